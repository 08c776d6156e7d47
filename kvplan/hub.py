"""Models by their Hugging Face Hub name: ``org/name[@revision]`` or ``hf://org/name``.

``huggingface_hub`` is imported here only, and only when such a name is given (``kvplan
estimate llama-3.1-8b`` never loads it). Files go to the standard Hugging Face cache, so a model
seen once works offline. Settings are read when a call is made, not when a module is imported:

- ``HF_TOKEN`` or the saved login (``hf auth login``) for gated and private repositories;
- ``HF_HUB_OFFLINE=1``: the cache only, never the network;
- ``HF_ENDPOINT`` (a mirror, or the test suite's fake Hub), ``HF_HOME`` / ``HF_HUB_CACHE``.

Weights come from the checkpoint's own headers: ``model.safetensors.index.json`` names the
shards, and each shard's header (8-byte length + JSON) is fetched by HTTP range request, never
the weights. The parsed headers are kept beside the Hugging Face cache
(``<HF_HOME>/kvplan/checkpoint-headers/``, keyed by commit) for offline use.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvplan.checkpoint import (
    SAFETENSORS_INDEX,
    SAFETENSORS_SINGLE,
    ByteReader,
    CheckpointWeights,
    TensorInfo,
    gguf_parts,
    gguf_stem,
    gguf_tensors,
    index_shards,
    local_reader,
    safetensors_tensors,
    select_gguf,
)
from kvplan.errors import InvalidInput, KvplanError, RuntimeFailure

# org/name: the Hub's repo-id rule (huggingface_hub utils/_validators.py REPO_ID_REGEX: letters,
# digits, '-', '_', '.'; at most 96 characters); a revision is a branch, tag or commit.
_HUB_RE = re.compile(
    r"^(?:hf://)?(?P<repo>[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96})(?:@(?P<rev>[\w./-]+?))?(?::(?P<file>[\w.-]+(?:/[\w.-]+)*))?$"
)
# hf_quant_config.json: NVIDIA ModelOpt's export (quant_algo, exclude_modules), which vLLM reads beside config.json
# (vLLM @7305c786 modelopt.py ModelOptNvFp4Config._from_config: original_config["quantization"]).
OPTIONAL_CONFIGS = ("generation_config.json", "quantization_config.json", "hf_quant_config.json")
_PARALLEL_REQUESTS = 8  # huggingface_hub's own default for parallel downloads (snapshot_download max_workers)
_TIMEOUT_S = 10.0  # huggingface_hub constants.HF_HUB_ETAG_TIMEOUT default


@dataclass(frozen=True)
class HubRef:
    """A repository on the Hub, at a revision (None: the default branch), optionally one file in it."""

    repo_id: str
    revision: str | None = None
    filename: str | None = None  # a GGUF file's path in the repository, or a quantization tag such as Q4_K_M

    def __str__(self) -> str:
        return self.repo_id + (f"@{self.revision}" if self.revision else "")


def parse_hub_ref(arg: str) -> HubRef | None:
    """``org/name[@rev][:file]`` or ``hf://...`` -> a HubRef; anything else -> None."""
    match = _HUB_RE.match(arg.strip())
    if not match or match["repo"].endswith((".yaml", ".yml", ".json")):
        return None
    return HubRef(match["repo"], match["rev"], match["file"])


@dataclass(frozen=True)
class HubSnapshot:
    """Files of one commit of a repository, as far as the local cache holds them."""

    repo_id: str
    commit: str
    folder: Path  # <cache>/models--org--name/snapshots/<commit>
    offline: bool

    @property
    def config(self) -> Path:
        return self.folder / "config.json"

    def __str__(self) -> str:
        return f"{self.repo_id}@{self.commit[:7]}"


# ---- settings, read per call ---------------------------------------------------------------


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in ("1", "ON", "YES", "TRUE")  # huggingface_hub constants._is_true


def offline() -> bool:
    from huggingface_hub import constants

    return _truthy(os.environ.get("HF_HUB_OFFLINE")) or constants.is_offline_mode()


def endpoint() -> str | None:
    value = os.environ.get("HF_ENDPOINT")
    return value.rstrip("/") if value else None  # None: huggingface_hub's default (https://huggingface.co)


def hub_cache() -> Path:
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(constants.HF_HUB_CACHE)


def headers_cache(repo_id: str, commit: str) -> Path:
    return hub_cache().parent / "kvplan" / "checkpoint-headers" / ("models--" + repo_id.replace("/", "--")) / commit


@contextmanager
def _quiet() -> Iterator[None]:
    """No progress bars: the library never prints (huggingface_hub would draw one per download)."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from huggingface_hub.utils import logging as hf_logging

    was_disabled, verbosity = are_progress_bars_disabled(), hf_logging.get_verbosity()
    disable_progress_bars()
    hf_logging.set_verbosity_error()  # its "Retrying in 1s" warnings: kvplan reports the failure itself
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if not was_disabled:
            enable_progress_bars()


# ---- config ----------------------------------------------------------------------------------


def download(ref: HubRef, filename: str, *, revision: str | None = None) -> Path:
    """One file of ``ref`` into the cache (or from it when offline); Hub errors become one line."""
    from huggingface_hub import hf_hub_download

    try:
        with _quiet():
            _fail_fast(ref, filename, revision=revision or ref.revision)
            return Path(
                hf_hub_download(
                    ref.repo_id,
                    filename,
                    revision=revision or ref.revision,
                    cache_dir=hub_cache(),
                    endpoint=endpoint(),
                    local_files_only=offline(),
                    etag_timeout=_TIMEOUT_S,
                )
            )
    except Exception as exc:  # noqa: BLE001 - every Hub failure becomes one KvplanError line
        raise hub_error(exc, ref, filename=filename) from None


def _fail_fast(ref: HubRef, filename: str, *, revision: str | None) -> None:
    """One HEAD request, no retries, for a file the cache lacks: a dead network fails now, not after
    the ~23 s of backoff hf_hub_download spends before giving up (huggingface_hub 2.4 http_backoff)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url, try_to_load_from_cache

    if offline() or isinstance(
        try_to_load_from_cache(ref.repo_id, filename, cache_dir=hub_cache(), revision=revision), str
    ):
        return
    url = hf_hub_url(ref.repo_id, filename, revision=revision, endpoint=endpoint())
    try:
        get_hf_file_metadata(url, timeout=_TIMEOUT_S, retry_on_errors=False)
    except _transport_errors():
        raise
    except Exception:  # noqa: BLE001, S110 - HTTP answers (404, gated...) are hf_hub_download's to report
        pass


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection-level failures of huggingface_hub's HTTP client: httpx2 (2.x) or httpx (1.x)."""
    try:
        import httpx2 as client
    except ImportError:  # pragma: no cover - huggingface_hub 1.x
        import httpx as client
    return (client.TransportError,)


def fetch_config(ref: HubRef) -> HubSnapshot:
    """``config.json`` (and the optional configs beside it) of ``ref``, through the cache."""
    config = download(ref, "config.json")
    commit = config.parent.name
    for name in OPTIONAL_CONFIGS:
        with suppress(KvplanError):  # optional: most repositories have no quantization_config.json
            download(ref, name, revision=commit)
    return HubSnapshot(ref.repo_id, commit, config.parent, offline())


def read_config(snapshot: HubSnapshot) -> dict[str, Any]:
    """config.json with a separate quantization_config.json folded in (as transformers reads it)."""
    from kvplan.files import read_json
    from kvplan.quant import fold_quant_files

    return fold_quant_files(read_json(snapshot.config), snapshot.folder)


def hub_error(exc: Exception, ref: HubRef, *, filename: str) -> KvplanError:
    """A huggingface_hub / network exception as one line: exit 2 for the user's input, 1 for the network."""
    from huggingface_hub import errors as hf

    repo = str(ref)
    local_hint = "pass a local folder holding config.json instead"
    if isinstance(exc, hf.GatedRepoError):
        return InvalidInput(
            f"repository {repo!r} is gated: accept its terms on its Hub page, then log in ('hf auth login') "
            "or set HF_TOKEN to a token that has access"
        )
    if isinstance(exc, hf.RepositoryNotFoundError):
        return InvalidInput(
            f"repository {ref.repo_id!r} not found on the Hugging Face Hub (if it is private, set HF_TOKEN); "
            "a bundled name (see 'kvplan models'), a spec YAML, a config.json or a folder are accepted too"
        )
    if isinstance(exc, hf.RevisionNotFoundError):
        return InvalidInput(f"revision {ref.revision!r} not found in repository {ref.repo_id!r}")
    if isinstance(exc, hf.RemoteEntryNotFoundError):
        return InvalidInput(f"repository {repo!r} has no {filename}; is it a model repository kvplan can read?")
    if offline():
        return InvalidInput(
            f"{repo!r} ({filename}) is not in the Hugging Face cache and HF_HUB_OFFLINE is set; "
            f"run once online, or {local_hint}"
        )
    if isinstance(exc, hf.HfHubHTTPError):
        return RuntimeFailure(f"the Hugging Face Hub answered {_status(exc)} for {repo!r} ({filename})")
    cause = exc.__cause__ or exc.__context__ or exc
    return RuntimeFailure(
        f"cannot reach the Hugging Face Hub for {repo!r} ({type(cause).__name__}); check the network, or {local_hint}"
    )


def _status(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return f"HTTP {response.status_code}" if response is not None else type(exc).__name__


# ---- checkpoint headers ----------------------------------------------------------------------


def remote_reader(ref: HubRef, filename: str, *, commit: str) -> ByteReader:
    """HTTP range requests on one file of the repository: exactly the bytes asked, never the weights."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    url = hf_hub_url(ref.repo_id, filename, revision=commit, endpoint=endpoint())
    headers = build_hf_headers()  # HF_TOKEN or the saved login

    def read(offset: int, length: int) -> bytes:
        wanted = {**headers, "Range": f"bytes={offset}-{offset + length - 1}"}
        with get_session().stream("GET", url, headers=wanted, timeout=_TIMEOUT_S) as response:
            if response.status_code >= 400:
                response.read()
                hf_raise_for_status(response)
            data = b""
            skip = 0 if response.status_code == 206 else offset  # a server that ignores Range sends it all
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) >= skip + length:
                    break  # never more than asked: closing the stream drops the rest
        return data[skip : skip + length]

    return read


def hub_checkpoint(ref: HubRef, snapshot: HubSnapshot) -> CheckpointWeights | None:
    """The checkpoint's tensors from its safetensors (or named GGUF) headers; None if it has none.

    Order: files already in the local snapshot; the headers cache; the Hub (range requests),
    unless offline. Network errors here propagate as :class:`RuntimeFailure`.
    """
    source = f"{ref.repo_id}@{snapshot.commit[:7]}"
    local = folder_checkpoint(snapshot.folder, source=source, gguf=ref.filename)
    if local is not None:
        return local
    cached = _load_headers(ref.repo_id, snapshot.commit, ref.filename)
    if cached is not None or snapshot.offline:
        return cached
    try:
        weights = _remote_checkpoint(ref, snapshot, source=source)
    except KvplanError:
        raise
    except Exception as exc:  # noqa: BLE001 - network and Hub failures are one line
        raise hub_error(exc, ref, filename="checkpoint headers") from None
    if weights is not None:
        _save_headers(ref.repo_id, snapshot.commit, ref.filename, weights)
    return weights


def _remote_checkpoint(ref: HubRef, snapshot: HubSnapshot, *, source: str) -> CheckpointWeights | None:
    from huggingface_hub import errors as hf

    if ref.filename:
        return _remote_gguf(ref, snapshot, source=source)
    try:
        index_path = download(ref, SAFETENSORS_INDEX, revision=snapshot.commit)
    except InvalidInput:  # no index: a single-file checkpoint, or none at all
        shards = [SAFETENSORS_SINGLE]
    else:
        from kvplan.files import read_json

        shards = index_shards(read_json(index_path), origin=f"{ref.repo_id}/{SAFETENSORS_INDEX}")

    def one(shard: str) -> list[TensorInfo]:
        reader = remote_reader(ref, shard, commit=snapshot.commit)
        return safetensors_tensors(reader, origin=f"{ref.repo_id}/{shard}")

    try:  # two small requests per shard; shards in parallel (a 405B checkpoint has ~190)
        per_shard = _in_parallel(one, shards)
    except hf.RemoteEntryNotFoundError:
        if shards == [SAFETENSORS_SINGLE]:
            return None  # neither an index nor model.safetensors: weights from the architecture
        raise InvalidInput(f"{ref.repo_id}: a shard named in {SAFETENSORS_INDEX} is missing") from None
    return CheckpointWeights(source, "safetensors", len(shards), tuple(t for ts in per_shard for t in ts))


def _in_parallel(fn: Any, items: list[str]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=_PARALLEL_REQUESTS) as pool:
        return list(pool.map(fn, items))


def _remote_gguf(ref: HubRef, snapshot: HubSnapshot, *, source: str) -> CheckpointWeights:
    """``:file.gguf`` or ``:Q4_K_M``: every part of that GGUF checkpoint, header by header."""
    from huggingface_hub import errors as hf

    parts = gguf_parts(ref.filename) if ref.filename.lower().endswith(".gguf") else _gguf_by_tag(ref, snapshot)

    def one(name: str) -> list[TensorInfo]:
        return gguf_tensors(remote_reader(ref, name, commit=snapshot.commit), origin=f"{ref.repo_id}/{name}")

    try:
        per_part = _in_parallel(one, parts)
    except hf.RemoteEntryNotFoundError:
        raise InvalidInput(f"repository {str(ref)!r} has no {', '.join(parts)}") from None
    label = _parts_label(parts)
    return CheckpointWeights(f"{source}/{label}", "gguf", len(parts), tuple(t for ts in per_part for t in ts))


def _parts_label(parts: list[str]) -> str:
    """``m-00001-of-00003.gguf (+2 parts)``: a split GGUF named by its first part."""
    more = len(parts) - 1
    return parts[0] + (f" (+{more} part{'s' if more > 1 else ''})" if more else "")


def _gguf_by_tag(ref: HubRef, snapshot: HubSnapshot) -> list[str]:
    """The repository's file list (the Hub's ``/api/models/{repo}/tree/{rev}?recursive=True``, which
    huggingface_hub ``HfApi.list_repo_files`` pages through), then the GGUF files carrying the tag."""
    from huggingface_hub import HfApi

    try:
        with _quiet():
            files = HfApi(endpoint=endpoint()).list_repo_files(ref.repo_id, revision=snapshot.commit)
    except Exception as exc:  # noqa: BLE001 - every Hub failure becomes one KvplanError line
        raise hub_error(exc, ref, filename="file list") from None
    return select_gguf(files, ref.filename or "", origin=str(ref))


def folder_checkpoint(folder: Path, *, source: str, gguf: str | None = None) -> CheckpointWeights | None:
    """Headers of the weights stored in a local folder (safetensors, or one GGUF checkpoint, split
    or not; ``gguf`` a file name or quantization tag picks one); None if it holds none of them."""
    index = folder / SAFETENSORS_INDEX
    if gguf is not None or (not index.is_file() and not (folder / SAFETENSORS_SINGLE).is_file()):
        return _folder_gguf(folder, source=source, gguf=gguf)
    if index.is_file():
        from kvplan.files import read_json

        shards = index_shards(read_json(index), origin=str(index))
    else:
        shards = [SAFETENSORS_SINGLE]
    paths = [folder / s for s in shards]
    if not all(p.is_file() for p in paths):
        return None  # a snapshot holding the index but not every shard: read the rest remotely
    tensors = [t for p in paths for t in safetensors_tensors(local_reader(p), origin=str(p))]
    return CheckpointWeights(source, "safetensors", len(paths), tuple(tensors))


def _folder_gguf(folder: Path, *, source: str, gguf: str | None) -> CheckpointWeights | None:
    # The folder and its direct subfolders (split GGUFs often sit in one per tag): never a deep walk, as
    # the folder may be wherever a config.json was given from.
    found = [*folder.glob("*.gguf"), *folder.glob("*/*.gguf")]
    names = sorted(p.relative_to(folder).as_posix() for p in found)
    if gguf is not None:
        try:
            parts = select_gguf(names, gguf, origin=str(folder))
        except InvalidInput:
            return None  # not (all) downloaded here: the caller reads the Hub's copy
    else:
        stems = {gguf_stem(n) for n in names}
        if len(stems) != 1:
            return None
        parts = gguf_parts(names[0], names)
    paths = [folder / n for n in parts]
    if not all(p.is_file() for p in paths):
        return None
    tensors = [t for p in paths for t in gguf_tensors(local_reader(p), origin=str(p))]
    label = _parts_label(parts)
    return CheckpointWeights(f"{source}/{label}", "gguf", len(parts), tuple(tensors))


def file_checkpoint(path: Path, *, source: str | None = None) -> CheckpointWeights:
    """One local ``.safetensors`` or ``.gguf`` file."""
    reader = local_reader(path)
    if reader(0, 4) == b"GGUF":
        return CheckpointWeights(source or str(path), "gguf", 1, tuple(gguf_tensors(reader, origin=str(path))))
    return CheckpointWeights(
        source or str(path), "safetensors", 1, tuple(safetensors_tensors(reader, origin=str(path)))
    )


def _headers_file(repo_id: str, commit: str, gguf: str | None) -> Path:
    name = "gguf-" + gguf.replace("/", "--") + ".json" if gguf else "safetensors.json"  # one file, no folders
    return headers_cache(repo_id, commit) / name


def _save_headers(repo_id: str, commit: str, gguf: str | None, weights: CheckpointWeights) -> None:
    path = _headers_file(repo_id, commit, gguf)
    data = {
        "source": weights.source,
        "format": weights.format,
        "files": weights.files,
        "tensors": [[t.name, t.dtype, list(t.shape), t.nbytes] for t in weights.tensors],
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass  # a read-only cache only costs the next run its range requests


def _load_headers(repo_id: str, commit: str, gguf: str | None) -> CheckpointWeights | None:
    path = _headers_file(repo_id, commit, gguf)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        tensors = tuple(TensorInfo(n, d, tuple(s), b) for n, d, s, b in data["tensors"])
        return CheckpointWeights(data["source"], data["format"], data["files"], tensors)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or damaged: read the headers again


def resolve_commit(ref: HubRef, filename: str) -> str:
    """The commit ``ref`` names: a commit hash as given, the cache's ref when offline, else a HEAD request."""
    if ref.revision and re.fullmatch(r"[0-9a-f]{40}", ref.revision):
        return ref.revision
    if offline():
        refs = hub_cache() / ("models--" + ref.repo_id.replace("/", "--")) / "refs" / (ref.revision or "main")
        try:
            return refs.read_text(encoding="utf-8").strip()
        except OSError:
            raise hub_error(FileNotFoundError(filename), ref, filename=filename) from None
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(ref.repo_id, filename, revision=ref.revision, endpoint=endpoint())
    try:
        commit = get_hf_file_metadata(url, timeout=_TIMEOUT_S).commit_hash
    except Exception as exc:  # noqa: BLE001 - every Hub failure becomes one KvplanError line
        raise hub_error(exc, ref, filename=filename) from None
    if not commit:
        raise RuntimeFailure(f"the Hub named no commit for {str(ref)!r} ({filename})")
    return commit


def checkpoint_from_ref(ref: HubRef) -> CheckpointWeights | None:
    """``--checkpoint org/name[@rev][:file.gguf]``: a repository's weights headers, without its config."""
    if not ref.filename:
        snapshot = fetch_config(ref)  # a safetensors checkpoint ships its config.json
    else:
        # A GGUF repository often has no config.json; every Hub repository has .gitattributes.
        probe = ref.filename if ref.filename.lower().endswith(".gguf") else ".gitattributes"
        commit = resolve_commit(ref, probe)
        folder = hub_cache() / ("models--" + ref.repo_id.replace("/", "--")) / "snapshots" / commit
        snapshot = HubSnapshot(ref.repo_id, commit, folder, offline())
    return hub_checkpoint(ref, snapshot)
