"""The demo project's tools as an environment class, for GRPO and multi-turn evaluation (pure; no Django).

Its public methods are the demo's tools (``annotate.demo.TOOLS``: same names, arguments and
descriptions), answering from small fixed tables so an episode is deterministic. ``get_reward``
scores the episode from its state: 1.0 when every call named a known city / airport / currency,
0.0 after any call the tables could not answer.

>>> env = TravelTools(); env.reset()
>>> env.get_weather(city="Paris")
'{"temperature": 18, "condition": "cloudy", "unit": "celsius"}'
>>> env.get_reward()
1.0
"""

from __future__ import annotations

import json

WEATHER = {"paris": (18, "cloudy"), "oslo": (-3, "snow"), "rome": (24, "sunny"), "london": (12, "rain"),
           "seattle": (11, "rain"), "tokyo": (21, "clear")}
AIRPORTS = {"JFK", "SEA", "LAX", "CDG", "FCO", "OSL", "LHR", "HND"}
RATES = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79, "JPY": 151.0, "NOK": 10.6}


class TravelTools:
    """The demo's weather, flight and currency tools."""

    def reset(self, **row) -> None:
        self.calls = 0
        self.unanswered = 0

    def get_weather(self, city: str, unit: str = "celsius") -> str:
        """Current weather for a city.

        Args:
            city: City name
            unit: Temperature unit (celsius or fahrenheit)
        """
        self.calls += 1
        found = WEATHER.get(str(city).strip().lower())
        if found is None:
            self.unanswered += 1
            raise ValueError(f"unknown city {city!r}")
        degrees, condition = found
        if unit == "fahrenheit":
            degrees = round(degrees * 9 / 5 + 32)
        return json.dumps({"temperature": degrees, "condition": condition, "unit": unit})

    def search_flights(self, origin: str, destination: str, date: str, cabin: str = "economy") -> str:
        """Search flights between two airports on a date.

        Args:
            origin: IATA code, e.g. JFK
            destination: IATA code, e.g. SEA
            date: YYYY-MM-DD
            cabin: economy or business
        """
        self.calls += 1
        if origin not in AIRPORTS or destination not in AIRPORTS:
            self.unanswered += 1
            raise ValueError(f"unknown airport in {origin!r} -> {destination!r}")
        price = 180 + 7 * (len(origin + destination) + len(date)) * (3 if cabin == "business" else 1)
        return json.dumps([{"flight": f"{origin[:2]}{len(date) * 37}", "date": date, "cabin": cabin,
                            "price_usd": price}])

    def convert_currency(self, amount: float, from_currency: str, to_currency: str) -> str:
        """Convert an amount between currencies.

        Args:
            amount: The amount to convert
            from_currency: ISO code of the amount's currency
            to_currency: ISO code to convert to
        """
        self.calls += 1
        if from_currency not in RATES or to_currency not in RATES:
            self.unanswered += 1
            raise ValueError(f"unknown currency in {from_currency!r} -> {to_currency!r}")
        return json.dumps({"amount": round(float(amount) / RATES[from_currency] * RATES[to_currency], 2),
                           "currency": to_currency})

    def get_reward(self) -> float:
        return 0.0 if self.unanswered else 1.0
