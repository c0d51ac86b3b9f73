"""Helpers for the evaluation-run tests (not a test module).

- ``prompt_snapshot_dir``: a real ``prompt`` snapshot folder (``training.export.run_export`` over
  the demo trajectories, every case type), built once per machine like the tiny model;
- ``ChatServer``: a real local HTTP server speaking the OpenAI chat-completions API, answering
  from a function of the request; on loopback, so it is called only where an allowlist entry
  allows it (``server.policy`` for a generator, ``server.allow()`` for runs); ``oracle``: that
  function for a list of items: it returns the references (and, after gold tool results, the turn's final answer), as a perfect model would;
- ``fill_run``: an ``EvalRun`` with scored results for given outputs, without generating.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

from tests.conftest import TINY_MODEL_CACHE

PROMPT_SNAPSHOT_CACHE = TINY_MODEL_CACHE.parent / "prompt-snapshot-demo"


def prompt_snapshot_dir(tokenizer_dir: Path) -> Path:
    """The demo trajectories exported as a prompt snapshot (train + eval splits), cached."""
    from filelock import FileLock

    from annotate.demo import demo_trajectories
    from training.export import ExportItem, ExportSettings, MemoryCache, code_fingerprint, run_export

    out = PROMPT_SNAPSHOT_CACHE / code_fingerprint()  # the render / export code changed: export afresh
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):
        if (out / "snapshot.json").exists() and (out / "eval.jsonl").exists():
            return out
        docs = {f"r{i}": t.to_dict() for i, t in enumerate(demo_trajectories())}
        items = [ExportItem(key=k, ident=f"t{i}v1", split=d["meta"]["split"]) for i, (k, d) in enumerate(docs.items())]
        run_export(items, ExportSettings(kind="prompt", template="qwen3", tokenizer=str(tokenizer_dir)), out,
                   load_documents=lambda keys: {k: copy.deepcopy(docs[k]) for k in keys}, cache=MemoryCache())
    return out


def make_prompt_snapshot(project, out_dir: Path, **fields):
    import uuid

    from training.models import JobStatus, Snapshot

    defaults = {"name": "demo prompts", "status": JobStatus.SUCCEEDED, "out_dir": str(out_dir),
                "content_hash": uuid.uuid4().hex, "render_settings": {"template": "qwen3"}}
    defaults.update(fields)
    return Snapshot.objects.create(project=project, kind="prompt", **defaults)


# --- an OpenAI-compatible server -----------------------------------------------------------------

class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default backlog (5) drops connections that arrive together: 1 s SYN retries


class ChatServer:
    """``POST /v1/chat/completions`` on a free local port, in threads; ``respond(body)`` returns the
    assistant message (a dict), or ``(status, text)`` to fail. Records every request body and the
    most requests it saw in flight at once."""

    def __init__(self, respond: Callable[[dict], object], *, delay: float = 0.0):
        self.respond = respond
        self.delay = delay
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                with server._lock:
                    server.requests.append({"path": self.path, "body": body, "host": self.headers.get("Host"),
                                            "authorization": self.headers.get("Authorization")})
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if server.delay:
                        time.sleep(server.delay)
                    answer = server.respond(body)
                finally:
                    with server._lock:
                        server.in_flight -= 1
                if isinstance(answer, tuple):
                    status, text = answer
                    data = text.encode()
                else:
                    status = 200
                    data = json.dumps({"id": "x", "object": "chat.completion", "model": body.get("model"),
                                       "choices": [{"index": 0, "message": {"role": "assistant", **answer},
                                                    "finish_reason": "stop"}],
                                       "usage": {"completion_tokens": 7}}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                    pass

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"

    @property
    def policy(self):
        """An allowlist of this server alone (loopback allowed for its exact host and port)."""
        from evaluation.outbound import OutboundPolicy, parse_rule

        return OutboundPolicy((parse_rule(f"127.0.0.1:{self.port}", private=True),))

    def allow(self, user=None):
        """This server on the admins' endpoint allowlist, as an admin would add it."""
        from evaluation.models import AllowedEndpoint

        return AllowedEndpoint.objects.get_or_create(
            pattern=f"127.0.0.1:{self.port}",
            defaults={"allow_private": True, "note": "the tests' chat server", "added_by": user})[0]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _key(messages: list[dict]) -> str:
    """Messages without their call ids and argument encoding: how the oracle recognises a prompt."""
    out = []
    for m in messages:
        calls = []
        for c in m.get("tool_calls") or []:
            fn = c.get("function", c)
            args = fn.get("arguments")
            calls.append([fn.get("name"), json.loads(args) if isinstance(args, str) else args])
        out.append([m.get("role"), m.get("content") or "", calls])
    return json.dumps(out, sort_keys=True)


def oracle(items, *, structured: bool = True) -> Callable[[dict], object]:
    """A perfect model for ``items``: the reference of the item whose prompt a request is, and after
    gold results (a replayed continuation) the turn's final answer. ``structured``: calls come back in
    ``tool_calls`` as vLLM's tool parser returns them; else as ``<tool_call>`` text in ``content``."""
    from evaluation.generate import wire_messages
    from evaluation.scoring import Reference, reference_output

    by_prompt = {_key(wire_messages(it.messages)): it for it in items}

    def respond(body: dict):
        messages = body["messages"]
        item = by_prompt.get(_key(messages))
        if item is not None:
            ref = Reference.from_dict(item.reference)
        else:  # a continuation: the longest item prompt it starts with
            starts = [it for k, it in by_prompt.items() if it.final_reference
                      and _key(messages[:len(it.messages)]) == k]
            if not starts:
                return 404, '{"error": "unknown prompt"}'
            ref = Reference.from_dict(max(starts, key=lambda it: len(it.messages)).final_reference)
        if ref.decision == "call" and structured:
            return {"content": None, "tool_calls": [
                {"id": f"call_{i}", "type": "function",
                 "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
                for i, c in enumerate(ref.calls)]}
        return {"content": reference_output(ref)}

    return respond


# --- runs with results, without generating -------------------------------------------------------

def fill_run(run, outputs: dict[int, str] | None = None, *, default: str = "oracle"):
    """Score an output per item of ``run``'s eval set (``outputs[position]``; else the reference, or
    ``default`` text) and store the results; the run ends succeeded with its summary."""
    from evaluation import jobs
    from evaluation.generate import ItemOutput
    from evaluation.items import EvalItem
    from evaluation.models import EvalItemResult
    from evaluation.parse import parse_output
    from evaluation.runner import score_item
    from evaluation.scoring import Reference, reference_output
    from training.models import JobStatus

    outputs = outputs or {}
    rows = []
    for row in run.eval_set.items.order_by("position"):
        item = EvalItem.from_dict(row.document)
        text = outputs.get(row.position)
        if text is None:
            text = reference_output(Reference.from_dict(item.reference)) if default == "oracle" else default
        out = ItemOutput(item_id=item.id, prompt_text=f"<|im_start|>user\n{item.id}<|im_end|>", raw=text,
                         parsed=parse_output(text).to_dict())
        rows.append(jobs.result_row(run.pk, row.position, row, score_item(item, out)))
    EvalItemResult.objects.bulk_create(rows)
    run.status = JobStatus.SUCCEEDED
    run.done_items = run.total_items = len(rows)
    run.progress = 1.0
    run.save()
    run.summary = jobs.summarize(run)
    run.save(update_fields=["summary"])
    return run
