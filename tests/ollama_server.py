"""A local server that speaks Ollama's REST API and generates with a real localrag LLM (the embedded model).

    with OllamaServer(llm, models=["smollm2:135m"], library=["llama3.2:1b"]) as server:
        ollama.Client(host=server.url).chat(model="smollm2:135m", messages=[...])

Endpoints: GET / ("Ollama is running"), /api/version, /api/tags, /api/ps, POST /api/show, /api/chat and
/api/generate (NDJSON streaming by default, like Ollama, or one JSON body), /api/pull (progress stream;
pulled models appear in /api/tags), DELETE /api/delete, and Ollama's OpenAI-compatible GET /v1/models and
POST /v1/chat/completions (SSE chunks ending in `data: [DONE]`, or one chat.completion). Errors are
{"error": "..."} bodies with Ollama's status codes (400 missing model field, 404 unknown model).

Knobs: `delay` (seconds before a chat or generate answers), `trickle` (seconds before each streamed
line: a backend that keeps sending, slowly), `hang` (every request is accepted and never answered,
until reset or stop), `fail_after` (tokens streamed before an error line, as Ollama does when a runner
dies), `requests` (every request body received, for assertions), `streams` (per stream: lines sent,
and whether all were).
"""

import asyncio
import hashlib
import json
import socket
import threading
import time
from datetime import datetime, timezone

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from rag.llm.ollama import normalize

VERSION = "0.12.6"
PULL_SIZE = 4 * 1024 * 1024  # bytes "downloaded" by a pull, in PULL_STEPS progress lines
PULL_STEPS = 8


def now() -> str:
    return datetime.now(timezone.utc).isoformat()


def digest(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class OllamaServer:
    """Ollama's API on 127.0.0.1 (random port) in a background thread; every model is served by `llm`."""

    def __init__(self, llm, models=("smollm2:135m",), library=("llama3.2:1b",), delay: float = 0.0):
        self.llm = llm
        self.models = {normalize(name): now() for name in models}  # installed: name -> modified_at
        self.library = {normalize(name) for name in library}  # pullable
        self.delay = delay
        self.trickle = 0.0
        self.hang = False
        self.fail_after: int | None = None
        self.streams: list[dict] = []
        self.pull_delay = 0.01
        self.requests: list[tuple[str, dict]] = []
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app(), log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = None

    def start(self) -> "OllamaServer":
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the Ollama test server did not start")
            time.sleep(0.01)
        return self

    def stop(self):
        self.server.should_exit = True
        if self.thread:
            self.thread.join(timeout=10)
        self.socket.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *args):
        self.stop()

    def reset(self, models=("smollm2:135m",)):
        """Back to the initial state between tests."""
        self.models = {normalize(name): now() for name in models}
        self.delay, self.trickle, self.hang, self.fail_after = 0.0, 0.0, False, None
        self.requests.clear()
        self.streams.clear()

    def entry(self, name: str) -> dict:
        """A model as /api/tags lists it."""
        return {
            "name": name,
            "model": name,
            "modified_at": self.models[name],
            "size": PULL_SIZE,
            "digest": digest(name)[7:],
            "details": self.details(),
        }

    @staticmethod
    def details() -> dict:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": "llama",
            "families": ["llama"],
            "parameter_size": "134.52M",
            "quantization_level": "Q4_1",
        }

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def record(request: Request, call_next):
            body = await request.body()
            try:
                self.requests.append((request.url.path, json.loads(body) if body else {}))
            except json.JSONDecodeError:
                return error(400, "invalid JSON body")
            if self.hang:
                while self.hang and not self.server.should_exit:
                    await asyncio.sleep(0.05)
                return error(503, "the test server stopped hanging")
            return await call_next(request)

        @app.get("/")
        async def root():
            return PlainTextResponse("Ollama is running")

        @app.get("/api/version")
        async def version():
            return {"version": VERSION}

        @app.get("/api/tags")
        async def tags():
            return {"models": [self.entry(name) for name in sorted(self.models)]}

        @app.get("/api/ps")
        async def ps():
            return {
                "models": [
                    {**self.entry(name), "expires_at": now(), "size_vram": 0, "context_length": self.llm.context_window}
                    for name in sorted(self.models)
                ]
            }

        @app.post("/api/show")
        async def show(request: Request):
            body = await request.json()
            name = normalize(body.get("model") or body.get("name") or "")
            if name not in self.models:
                return error(404, f"model '{body.get('model')}' not found")
            return {
                "license": "Apache License 2.0",
                "modelfile": f"FROM {name}\n",
                "parameters": "stop \"<|im_end|>\"",
                "template": "{{ .Prompt }}",
                "details": self.details(),
                "model_info": {
                    "general.architecture": "llama",
                    "general.parameter_count": 134515008,
                    "llama.context_length": self.llm.context_window,
                    "llama.embedding_length": 576,
                },
                "capabilities": ["completion"],
                "modified_at": self.models[name],
            }

        @app.delete("/api/delete")
        async def delete(request: Request):
            body = await request.json()
            name = normalize(body.get("model") or body.get("name") or "")
            if self.models.pop(name, None) is None:
                return error(404, f"model '{body.get('model')}' not found")
            return JSONResponse(None)

        @app.post("/api/pull")
        async def pull(request: Request):
            body = await request.json()
            name = normalize(body.get("model") or body.get("name") or "")
            known = name in self.library or name in self.models
            if not body.get("stream", True):
                if not known:
                    return error(500, "pull model manifest: file does not exist")
                self.models[name] = now()
                return {"status": "success"}

            async def progress():
                yield line({"status": "pulling manifest"})
                if not known:
                    yield line({"error": "pull model manifest: file does not exist"})
                    return
                layer = digest(name)
                for step in range(PULL_STEPS + 1):
                    await asyncio.sleep(self.pull_delay)
                    completed = PULL_SIZE * step // PULL_STEPS
                    yield line({"status": f"pulling {layer[7:19]}", "digest": layer, "total": PULL_SIZE, "completed": completed})
                for status in ("verifying sha256 digest", "writing manifest"):
                    yield line({"status": status})
                self.models[name] = now()
                yield line({"status": "success"})

            return StreamingResponse(progress(), media_type="application/x-ndjson")

        @app.post("/api/chat")
        async def chat(request: Request):
            body = await request.json()
            return await self.generate(body, body.get("messages") or [], "chat")

        @app.post("/api/generate")
        async def generate(request: Request):
            body = await request.json()
            messages = [{"role": "system", "content": body["system"]}] if body.get("system") else []
            if body.get("prompt"):
                messages.append({"role": "user", "content": body["prompt"]})
            return await self.generate(body, messages, "generate")

        @app.get("/v1/models")
        async def models():
            listed = [{"id": name, "object": "model", "created": 0, "owned_by": "library"} for name in sorted(self.models)]
            return {"object": "list", "data": listed}

        @app.post("/v1/chat/completions")
        async def completions(request: Request):
            return await self.completions(await request.json())

        return app

    async def generate(self, body: dict, messages: list[dict], kind: str):
        """Chat or generate with the real LLM, as one JSON body or an NDJSON stream."""
        if not body.get("model"):
            return error(400, "model is required")
        name = normalize(body["model"])
        if name not in self.models:
            return error(404, f'model "{body["model"]}" not found, try pulling it first')
        if self.delay:
            await asyncio.sleep(self.delay)
        if not messages:  # Ollama loads the model and answers done_reason "load"
            return self.part(name, kind, "", {"done": True, "done_reason": "load"})

        options = body.get("options") or {}
        num_predict = options.get("num_predict")
        max_tokens = num_predict if num_predict and num_predict > 0 else 128
        messages = [{"role": m["role"], "content": m.get("content") or ""} for m in messages]
        prompt_tokens = self.llm.count_messages(messages)
        window = options.get("num_ctx") or self.llm.context_window
        if prompt_tokens > window:
            return error(500, f"prompt of {prompt_tokens} tokens exceeds the context window of {window} (num_ctx)")
        arguments = {"max_tokens": max_tokens, "stop": options.get("stop"), "temperature": options.get("temperature")}
        started = time.perf_counter_ns()

        if not body.get("stream", True):
            text = await asyncio.to_thread(self.llm.chat, messages, stream=False, **arguments)
            count = self.llm.count_tokens(text)
            stats = self.stats(started, prompt_tokens, count, "length" if count >= max_tokens else "stop")
            return self.part(name, kind, text, stats)

        fail_after = self.fail_after

        def lines():
            count = 0
            for piece in self.pieces(messages, arguments):
                if fail_after is not None and count >= fail_after:
                    yield line({"error": "an error was encountered while running the model: unexpected EOF"})
                    return
                count += 1
                yield line(self.part(name, kind, piece, {"done": False}))
            stats = self.stats(started, prompt_tokens, count, "length" if count >= max_tokens else "stop")
            yield line(self.part(name, kind, "", stats))

        return StreamingResponse(self.recorded(lines()), media_type="application/x-ndjson")

    def pieces(self, messages: list[dict], arguments: dict):
        """The real LLM's streamed pieces, each after `trickle` seconds."""
        pieces = self.llm.chat(messages, stream=True, **arguments)
        try:
            for piece in pieces:
                time.sleep(self.trickle)
                yield piece
        finally:
            pieces.close()
        time.sleep(self.trickle)

    def recorded(self, lines):
        """lines, counted in `streams`: {"sent": lines sent so far, "done": all sent}. A stream whose
        client went away stops growing (the server stops at its next write)."""
        stream = {"sent": 0, "done": False}
        self.streams.append(stream)
        for item in lines:
            yield item
            stream["sent"] += 1
        stream["done"] = True

    async def completions(self, body: dict):
        """OpenAI's chat completions as Ollama serves them at /v1: SSE chunks, or one chat.completion."""
        name = normalize(body.get("model") or "")
        if name not in self.models:
            message = f'model "{body.get("model")}" not found, try pulling it first'
            return JSONResponse({"error": {"message": message, "type": "api_error"}}, 404)
        if self.delay:
            await asyncio.sleep(self.delay)
        messages = [{"role": m["role"], "content": m.get("content") or ""} for m in body.get("messages") or []]
        stop = [body["stop"]] if isinstance(body.get("stop"), str) else body.get("stop")
        arguments = {"max_tokens": body.get("max_tokens") or 128, "stop": stop, "temperature": body.get("temperature")}
        head = {"id": "chatcmpl-" + digest(str(time.time_ns()))[7:15], "created": int(time.time()), "model": name}
        if not body.get("stream"):
            text = await asyncio.to_thread(self.llm.chat, messages, stream=False, **arguments)
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            return {**head, "object": "chat.completion", "choices": [choice]}

        def chunk(delta: dict, finish: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return f"data: {json.dumps({**head, 'object': 'chat.completion.chunk', 'choices': [choice]})}\n\n"

        def events():
            for piece in self.pieces(messages, arguments):
                yield chunk({"role": "assistant", "content": piece})
            yield chunk({}, "stop")
            yield "data: [DONE]\n\n"

        return StreamingResponse(self.recorded(events()), media_type="text/event-stream")

    @staticmethod
    def part(name: str, kind: str, text: str, extra: dict) -> dict:
        content = {"message": {"role": "assistant", "content": text}} if kind == "chat" else {"response": text}
        return {"model": name, "created_at": now(), **content, **extra}

    @staticmethod
    def stats(started: int, prompt_tokens: int, count: int, reason: str) -> dict:
        total = time.perf_counter_ns() - started
        return {
            "done": True,
            "done_reason": reason,
            "total_duration": total,
            "load_duration": 0,
            "prompt_eval_count": prompt_tokens,
            "prompt_eval_duration": 0,
            "eval_count": count,
            "eval_duration": total,
        }


def line(data) -> str:
    return json.dumps(data) + "\n"


def free_port() -> int:
    """A port nothing listens on (for "Ollama is down")."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
