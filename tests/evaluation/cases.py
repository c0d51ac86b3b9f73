"""Hand-made canonical trajectories, one or more per case type, shared by the evaluation tests."""

from __future__ import annotations

import json

from annotate.trajectory import Trajectory

WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
        },
        "required": ["city"],
    },
}
FORECAST = {
    "name": "get_forecast",
    "description": "Weather forecast for the next days.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
    },
}
FLIGHT = {
    "name": "book_flight",
    "description": "Book a flight.",
    "parameters": {
        "type": "object",
        "properties": {
            "origin": {"type": "string"},
            "destination": {"type": "string"},
            "date": {"type": "string"},
            "cabin": {"type": "string", "enum": ["economy", "business"]},
        },
        "required": ["origin", "destination", "date"],
    },
}
TOOLS = [WEATHER, FORECAST, FLIGHT]


def call(name, arguments, call_id):
    return {"kind": "tool_call", "name": name, "arguments": arguments, "call_id": call_id}


def result(name, value, call_id, ok=True):
    text = value if isinstance(value, str) else json.dumps(value)
    return {"kind": "tool_result", "name": name, "text": text, "call_id": call_id, "ok": ok}


def answer(text):
    return {"kind": "answer", "text": text}


def think(text):
    return {"kind": "think", "text": text}


def trajectory(case_types, turns, tools=TOOLS, external_id=""):
    return Trajectory.from_dict(
        {
            "tools": tools,
            "turns": turns,
            "meta": {"case_types": case_types, "external_id": external_id or case_types[0], "split": "eval"},
        }
    )


PARIS = {"temperature": 18, "condition": "cloudy"}

TRAJECTORIES = [
    trajectory(
        ["tool_required"],
        [
            {
                "user": "What's the weather in Paris right now?",
                "steps": [
                    think("The user wants the current weather; get_weather takes the city."),
                    call("get_weather", {"city": "Paris"}, "c1"),
                    result("get_weather", PARIS, "c1"),
                    answer("It is 18 degrees and cloudy in Paris."),
                ],
            }
        ],
    ),
    trajectory(
        ["tool_required"],
        [
            {
                "user": "Compare the weather in Paris and Rome.",
                "steps": [
                    call("get_weather", {"city": "Paris"}, "c1"),
                    call("get_weather", {"city": "Rome"}, "c2"),
                    result("get_weather", PARIS, "c1"),
                    result("get_weather", {"temperature": 24, "condition": "sunny"}, "c2"),
                    answer("Paris is 18 degrees and cloudy; Rome is warmer at 24 degrees and sunny."),
                ],
            }
        ],
        external_id="parallel",
    ),
    trajectory(
        ["no_tool"],
        [{"user": "What is the capital of France?", "steps": [answer("The capital of France is Paris.")]}],
    ),
    trajectory(
        ["clarification"],
        [
            {
                "user": "Book me a flight to Seattle.",
                "steps": [answer("Happy to. Which city are you flying from, and on what date?")],
            },
            {
                "user": "From New York, on 2024-05-20.",
                "steps": [
                    call("book_flight", {"origin": "New York", "destination": "Seattle", "date": "2024-05-20"}, "c1"),
                    result("book_flight", {"confirmation": "XK42", "status": "booked"}, "c1"),
                    answer("Booked: your confirmation number is XK42."),
                ],
            },
        ],
    ),
    trajectory(
        ["tool_unavailable"],
        [
            {
                "user": "Book me a hotel in Rome for next weekend.",
                "steps": [answer("Sorry, I can't book hotels: I only have tools for weather and flights.")],
            }
        ],
    ),
    trajectory(
        ["irrelevant_tools"],
        [
            {
                "user": "What is Apple's stock price today?",
                "steps": [answer("I'm afraid none of the available tools give stock prices, so I cannot look that up.")],
            }
        ],
        tools=[WEATHER],
    ),
    trajectory(
        ["tool_failure"],
        [
            {
                "user": "What's the weather in Oslo?",
                "steps": [
                    call("get_weather", {"city": "Oslo"}, "c1"),
                    result("get_weather", "error: upstream timeout", "c1", ok=False),
                    call("get_weather", {"city": "Oslo"}, "c2"),
                    result("get_weather", "error: upstream timeout", "c2", ok=False),
                    answer("Sorry, the weather service timed out twice, so I could not get the weather for Oslo."),
                ],
            }
        ],
    ),
    trajectory(
        ["multi_turn", "tool_required"],
        [
            {
                "user": "What's the weather in Paris?",
                "steps": [
                    call("get_weather", {"city": "Paris"}, "c1"),
                    result("get_weather", PARIS, "c1"),
                    answer("It is 18 degrees and cloudy in Paris."),
                ],
            },
            {
                "user": "Is that warmer than 15 degrees? And what about the next 3 days there?",
                "steps": [
                    call("get_forecast", {"city": "Paris", "days": 3}, "c2"),
                    result("get_forecast", {"forecast": ["rain", "rain", "sun"]}, "c2"),
                    answer("Yes, 18 degrees is warmer than 15. The next 3 days: rain, rain, then sun."),
                ],
            },
        ],
    ),
]
