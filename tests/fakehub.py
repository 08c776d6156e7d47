"""A fake Hugging Face Hub on 127.0.0.1: repositories held in memory, served the way the Hub does.

``GET``/``HEAD /{org}/{name}/resolve/{revision}/{path}`` answer with the headers huggingface_hub
reads (``X-Repo-Commit``, ``ETag``, ``Content-Length``) and honour ``Range: bytes=a-b``; errors carry
the Hub's ``X-Error-Code`` (RepoNotFound, GatedRepo, RevisionNotFound, EntryNotFound), which
huggingface_hub's ``hf_raise_for_status`` turns into its exceptions. Point ``HF_ENDPOINT`` at
:attr:`FakeHub.url`. Every request is logged so a test can check that no weights were read.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "hf_fake_token_for_tests"


@dataclass
class Repo:
    files: dict[str, bytes]
    commit: str = "0123456789abcdef0123456789abcdef01234567"
    gated: bool = False


@dataclass
class Request:
    method: str
    path: str
    range: str | None


@dataclass
class FakeHub:
    repos: dict[str, Repo] = field(default_factory=dict)
    log: list[Request] = field(default_factory=list)
    url: str = ""

    def bytes_served(self, filename: str) -> int:
        """Bytes sent for GETs of ``filename`` (every repository)."""
        return sum(_span(r.range) for r in self.log if r.method == "GET" and r.path.endswith("/" + filename))


def _span(text: str | None) -> int:
    match = re.fullmatch(r"bytes=(\d+)-(\d*)", text or "")
    if not match:
        return 1 << 62  # a GET without a range: the whole file
    return int(match[2]) - int(match[1]) + 1 if match[2] else 1 << 62


_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
# The file list huggingface_hub's HfApi.list_repo_files reads (hf_api.py _iter_repo_tree_pages, 2.4):
# GET {endpoint}/api/models/{repo_id}/tree/{revision}?recursive=True&expand=False -> a JSON list of
# {"type": "file", "path", "size", "oid"}; one page (no Link header) for these small repositories.
_TREE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/?]+)$")


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve(body=False)

        def do_GET(self) -> None:  # noqa: N802
            self._serve(body=True)

        def _error(self, status: int, code: str) -> None:
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _serve(self, *, body: bool) -> None:
            hub.log.append(Request(self.command, self.path, self.headers.get("Range")))
            path = self.path.split("?", 1)[0]
            match = _RESOLVE.match(path) or _TREE.match(path)
            repo = hub.repos.get(match["repo"]) if match else None
            if repo is None:
                return self._error(401, "RepoNotFound")  # the Hub answers 401 for unknown repos
            if repo.gated and self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self._error(401, "GatedRepo")
            if match["rev"] not in ("main", repo.commit):
                return self._error(404, "RevisionNotFound")
            if match.re is _TREE:
                return self._tree(repo)
            data = repo.files.get(match["path"])
            if data is None:
                return self._error(404, "EntryNotFound")
            start, end, status = 0, len(data) - 1, 200
            ranged = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
            if ranged and body:
                start = int(ranged[1])
                end = min(int(ranged[2]), len(data) - 1) if ranged[2] else len(data) - 1
                status = 206
            chunk = data[start : end + 1]
            self.send_response(status)
            self.send_header("X-Repo-Commit", repo.commit)
            self.send_header("ETag", '"' + hashlib.sha256(data).hexdigest() + '"')
            self.send_header("Content-Length", str(len(chunk) if body else len(data)))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.end_headers()
            if body:
                self.wfile.write(chunk)

        def _tree(self, repo: Repo) -> None:
            import json

            listing = [
                {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}  # noqa: S324
                for name, data in sorted(repo.files.items())
            ]
            raw = json.dumps(listing).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    return Handler


def start(hub: FakeHub) -> tuple[ThreadingHTTPServer, threading.Thread]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


# ---- header-only checkpoints: the tensor list of a real release, without its weights -------------

_ITEMSIZE = {"BF16": 2, "F16": 2, "F32": 4, "F8_E4M3": 1, "U8": 1, "I32": 4}


def header_only_safetensors(tensors: dict[str, tuple[str, tuple[int, ...]]]) -> bytes:
    """A safetensors file cut after its header: the JSON lists every tensor with its offsets, the data
    is absent. Readers of headers (range requests on the first bytes) cannot tell the difference."""
    import json
    import math

    header, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        size = math.prod(shape) * _ITEMSIZE[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format pads the header to 8 bytes
    return len(raw).to_bytes(8, "little") + raw


# Qwen/Qwen3-32B config.json (published facts; the same as model_specs/qwen3-32b.yaml).
QWEN3_32B_CONFIG = {
    "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 5120, "intermediate_size": 25600,
    "num_hidden_layers": 64, "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 128,
    "vocab_size": 151936, "max_position_embeddings": 40960, "rope_theta": 1000000, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "use_sliding_window": False, "sliding_window": None, "max_window_layers": 64,
    "rms_norm_eps": 1e-06, "attention_bias": False,
}  # fmt: skip


def qwen3_32b_repo(shards: int = 17) -> Repo:
    """Qwen/Qwen3-32B as the Hub holds it: config.json, the index and 17 bf16 shards (headers only),
    tensor names and shapes as transformers' Qwen3ForCausalLM saves them."""
    import json

    h, inter, heads, kv, hd, vocab = 5120, 25600, 64, 8, 128, 151936
    tensors: dict[str, tuple[str, tuple[int, ...]]] = {"model.embed_tokens.weight": ("BF16", (vocab, h))}
    for i in range(64):
        p = f"model.layers.{i}."
        tensors |= {
            p + "self_attn.q_proj.weight": ("BF16", (heads * hd, h)),
            p + "self_attn.k_proj.weight": ("BF16", (kv * hd, h)),
            p + "self_attn.v_proj.weight": ("BF16", (kv * hd, h)),
            p + "self_attn.o_proj.weight": ("BF16", (h, heads * hd)),
            p + "self_attn.q_norm.weight": ("BF16", (hd,)),
            p + "self_attn.k_norm.weight": ("BF16", (hd,)),
            p + "mlp.gate_proj.weight": ("BF16", (inter, h)),
            p + "mlp.up_proj.weight": ("BF16", (inter, h)),
            p + "mlp.down_proj.weight": ("BF16", (h, inter)),
            p + "input_layernorm.weight": ("BF16", (h,)),
            p + "post_attention_layernorm.weight": ("BF16", (h,)),
        }
    tensors |= {"model.norm.weight": ("BF16", (h,)), "lm_head.weight": ("BF16", (vocab, h))}
    names = list(tensors)
    per = -(-len(names) // shards)
    files, weight_map = {}, {}
    for s in range(shards):
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[s * per : (s + 1) * per]}
        files[fname] = header_only_safetensors(part)
        weight_map |= dict.fromkeys(part, fname)
    files["model.safetensors.index.json"] = json.dumps({"metadata": {}, "weight_map": weight_map}).encode()
    files["config.json"] = json.dumps(QWEN3_32B_CONFIG).encode()
    return Repo(files)  # the fake's commit id (0123456...), not the real one
