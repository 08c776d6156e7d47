"""GGUF checkpoints: headers read without a byte of the data section, and files picked by their
quantization tag (``org/name:Q4_K_M``) from the fake Hub's file list, split files summed over parts."""

from __future__ import annotations

import pytest

from kvplan.checkpoint import gguf_tensors, local_reader
from kvplan.errors import InvalidInput
from tests.fakehub import Repo

gguf = pytest.importorskip("gguf")
np = pytest.importorskip("numpy")

F16_EMBED = 256 * 64 * 2  # token_embd.weight, F16: 32,768 bytes
F32_NORM = 64 * 4  # a norm, F32: 256 bytes


def write(path, *, tensors: dict[str, np.ndarray], tokens: int = 300, split: tuple[int, int] | None = None) -> None:
    """A llama GGUF with ``tokens`` tokenizer strings in its metadata and the given (float) tensors."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_token_list([f"token-{i}" for i in range(tokens)])
    writer.add_token_scores([0.0] * tokens)
    if split is not None:  # llama.cpp gguf-split's keys (LLM_KV_SPLIT_NO / _COUNT)
        writer.add_uint16("split.no", split[0])
        writer.add_uint16("split.count", split[1])
    for name, data in tensors.items():
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _tensors() -> dict[str, np.ndarray]:
    return {"token_embd.weight": np.zeros((256, 64), dtype=np.float16), "output_norm.weight": np.ones(64, np.float32)}


def _logged(path, log: list[tuple[int, int]]):
    read = local_reader(path)

    def logged(offset: int, length: int) -> bytes:
        log.append((offset, length))
        return read(offset, length)

    return logged


@pytest.mark.parametrize("tokens", [10, 20_000])
def test_header_reads_end_before_the_data_section(tmp_path, tokens):
    path = tmp_path / "m-F16.gguf"
    write(path, tensors=_tensors(), tokens=tokens)
    data_offset = gguf.GGUFReader(str(path)).data_offset  # gguf-py: where the aligned tensor data begins
    log: list[tuple[int, int]] = []
    found = gguf_tensors(_logged(path, log), origin=str(path))
    assert sum(t.nbytes for t in found) == F16_EMBED + F32_NORM
    assert max(offset + length for offset, length in log) <= data_offset  # not one weight byte
    # each read goes as far as the header has announced so far (counts x smallest encodings): a 512-byte
    # header takes 9 reads, a 449,216-byte one (20,000 tokens and their scores) 22, not one per field
    assert len(log) <= (12 if tokens == 10 else 30), len(log)


def test_header_shorter_than_announced_is_one_line(tmp_path):
    path = tmp_path / "m.gguf"
    write(path, tensors=_tensors())
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(path.read_bytes()[:200])
    with pytest.raises(InvalidInput, match="GGUF header ends early"):
        gguf_tensors(local_reader(cut), origin=str(cut))


# ---- quantization tags on the (fake) Hub ------------------------------------------------------------


@pytest.fixture
def gguf_repo(hub, tmp_path):
    """org/tiny-GGUF: Q8_0 and Q4_K_M single files, a BF16 split in 3 parts in a folder, a README."""
    files = {"README.md": b"", ".gitattributes": b""}
    for tag in ("Q8_0", "Q4_K_M"):
        write(tmp_path / f"{tag}.gguf", tensors=_tensors())
        files[f"tiny-{tag}.gguf"] = (tmp_path / f"{tag}.gguf").read_bytes()
    # each part holds its own tensors and its own header (gguf-split): part 1 the embedding, parts 2-3 a norm
    norm = np.ones(64, np.float32)
    parts = [{"token_embd.weight": np.zeros((256, 64), np.float16)}, {"blk.0.attn_norm.weight": norm},
             {"output_norm.weight": norm}]  # fmt: skip
    for i, tensors in enumerate(parts, start=1):
        part = tmp_path / f"part{i}.gguf"
        write(part, tensors=tensors, split=(i - 1, 3))
        files[f"BF16/tiny-BF16-{i:05d}-of-00003.gguf"] = part.read_bytes()
    hub.repos["org/tiny-GGUF"] = Repo(files)
    return hub


def _checkpoint(arg: str):
    from kvplan.catalog import load_checkpoint

    return load_checkpoint(arg)


def test_tag_picks_the_one_file_and_reads_headers_only(gguf_repo):
    weights = _checkpoint("org/tiny-GGUF:q4_k_m")  # case-insensitive, as users type it
    assert weights.format == "gguf" and weights.files == 1
    assert weights.source.endswith("/tiny-Q4_K_M.gguf")
    assert weights.total_bytes == F16_EMBED + F32_NORM
    data = gguf_repo.repos["org/tiny-GGUF"].files["tiny-Q4_K_M.gguf"]
    assert any("/api/models/org/tiny-GGUF/tree/" in r.path for r in gguf_repo.log)  # the file list was read
    ranges = [r.range for r in gguf_repo.log if r.method == "GET" and r.path.endswith("tiny-Q4_K_M.gguf")]
    ends = [int(x.split("-")[1]) + 1 for x in ranges]  # bytes=a-b: the last byte asked is b
    assert ranges and max(ends) <= _data_offset(data)


def _data_offset(data: bytes) -> int:
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".gguf") as fh:
        fh.write(data)
        fh.flush()
        return gguf.GGUFReader(fh.name).data_offset


def test_split_checkpoint_is_summed_over_its_parts(gguf_repo):
    # part 1: F16 256x64 = 32,768; parts 2 and 3: F32 norms of 64 = 256 each -> 33,280 in 3 files
    for arg in ("org/tiny-GGUF:BF16", "org/tiny-GGUF:BF16/tiny-BF16-00001-of-00003.gguf"):
        weights = _checkpoint(arg)
        assert (weights.files, weights.total_bytes) == (3, F16_EMBED + 2 * F32_NORM), arg
        assert "(+2 parts)" in weights.source
        names = {t.name for t in weights.tensors}
        assert names == {"token_embd.weight", "blk.0.attn_norm.weight", "output_norm.weight"}


def test_tag_missing_names_the_tags_available(gguf_repo, cli):
    result = cli("estimate", "llama-3.2-1b", "--checkpoint", "org/tiny-GGUF:Q5_K_M")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "kvplan: error: org/tiny-GGUF: no GGUF file carries the tag 'Q5_K_M'; tags available: BF16, Q4_K_M, Q8_0 "
        "(or name a file with ':file.gguf')"
    ]


def test_tag_ambiguous_names_the_files(gguf_repo, cli, tmp_path):
    repo = gguf_repo.repos["org/tiny-GGUF"]
    repo.files["tiny-instruct-Q8_0.gguf"] = repo.files["tiny-Q8_0.gguf"]
    result = cli("estimate", "llama-3.2-1b", "--checkpoint", "org/tiny-GGUF:Q8_0")
    assert result.exit_code == 2 and result.stdout == ""
    assert "the tag 'Q8_0' names 2 GGUF checkpoints (tiny-Q8_0.gguf, tiny-instruct-Q8_0.gguf)" in result.stderr
    assert result.stderr.count("\n") == 1


def test_tag_weights_reach_the_estimate(gguf_repo, cli):
    import json

    result = cli("estimate", "llama-3.2-1b", "-c", "4k", "--checkpoint", "org/tiny-GGUF:Q8_0", "-f", "json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)[0]
    assert row["weights_bytes_per_gpu"] == F16_EMBED + F32_NORM
    assert "tiny-Q8_0.gguf gguf headers (1 file, 2 tensors)" in row["weights_source"]


def test_local_folder_with_a_split_gguf_in_a_subfolder(tmp_path):
    from kvplan.hub import folder_checkpoint

    (tmp_path / "Q8_0").mkdir()
    norm = np.ones(64, np.float32)
    for i, tensors in enumerate([{"token_embd.weight": np.zeros((256, 64), np.float16)}, {"output_norm.weight": norm}]):
        write(tmp_path / "Q8_0" / f"m-Q8_0-{i + 1:05d}-of-00002.gguf", tensors=tensors, split=(i, 2))
    weights = folder_checkpoint(tmp_path, source="here")
    # 32,768 (F16 embedding, part 1) + 256 (F32 norm, part 2)
    assert (weights.files, weights.total_bytes) == (2, F16_EMBED + F32_NORM)
    assert weights.source == "here/Q8_0/m-Q8_0-00001-of-00002.gguf (+1 part)"
    write(tmp_path / "other-Q4_0.gguf", tensors=_tensors())  # a second checkpoint: no longer one to pick
    assert folder_checkpoint(tmp_path, source="here") is None
    assert folder_checkpoint(tmp_path, source="here", gguf="Q4_0").files == 1


def test_engines_take_the_gguf_type_they_load(cli, tmp_path):
    """llama.cpp loads GGUF types by name (q4_0); vLLM gets the generic int4. Both weigh the headers."""
    import json

    from gguf import quants

    q4 = gguf.GGMLQuantizationType.Q4_0
    path = tmp_path / "m-Q4_0.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor("token_embd.weight", np.zeros((256, 64), np.float16))
    writer.add_tensor("blk.0.attn_q.weight", quants.quantize(np.zeros((64, 64), np.float32), q4), raw_dtype=q4)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    # F16 256x64 = 32,768 + Q4_0 64x64 / 32 x 18 = 2,304 -> 35,072
    for engine, dtype in (("llamacpp", "q4_0"), ("vllm", "int4")):
        result = cli("capacity", "llama-3.2-1b", "--gpu", "l4", "-c", "4k", "-e", engine, "--checkpoint", str(path),
                     "-f", "json")  # fmt: skip
        assert result.exit_code == 0, result.output
        doc = json.loads(result.stdout)
        assert (doc["weights_dtype"], doc["breakdown"]["weights_bytes"]) == (dtype, 35_072), engine


def test_tag_matching_rules():
    from kvplan.checkpoint import select_gguf

    files = ["m-Q4_K_M.gguf", "m-Q4_K_S.gguf", "m-UD-Q4_K_XL.gguf", "m-IQ4_XS.gguf", "README.md"]
    assert select_gguf(files, "q4_k_s", origin="r") == ["m-Q4_K_S.gguf"]
    assert select_gguf(files, "Q4_K_XL", origin="r") == ["m-UD-Q4_K_XL.gguf"]  # the UD- prefix may be left out
    assert select_gguf(files, "UD-Q4_K_XL", origin="r") == ["m-UD-Q4_K_XL.gguf"]
    assert select_gguf(files, "IQ4_XS", origin="r") == ["m-IQ4_XS.gguf"]
    with pytest.raises(InvalidInput, match="tags available: IQ4_XS, Q4_K_M, Q4_K_S, UD-Q4_K_XL"):
        select_gguf(files, "Q4_K", origin="r")  # a whole token only: Q4_K is neither Q4_K_M nor Q4_K_S
