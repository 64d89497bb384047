import io
import json
import tarfile

import pytest

from kslottery.method import data
from kslottery.method.errors import KSLError


def test_flores_real_lines(flores_dir):
    b = data.load_flores("eng_Latn-cat_Latn", "devtest")
    assert len(b) == 1012
    assert b.src[0].startswith('"We now have 4-month-old mice')
    assert b.tgt[0].startswith("Ara tenim ratolins de quatre mesos")
    dev = data.load_flores("eng_Latn-deu_Latn", "dev", limit=5)
    assert len(dev) == 5 and dev.name == "flores200-dev-eng_Latn-deu_Latn[:5]"
    assert dev.sha256 != data.load_flores("eng_Latn-deu_Latn", "dev", limit=6).sha256


def test_flores_english_checksum_matches_readme(flores_dir):
    import hashlib
    raw = (flores_dir / "flores200/devtest/eng_Latn.devtest").read_bytes()
    assert hashlib.sha256(raw).hexdigest().startswith("612e9fbe")


def test_unknown_language_lists_available(flores_dir):
    with pytest.raises(KSLError, match=r"unknown language code 'xxx_Latn'.*cat_Latn.*spa_Latn"):
        data.load_flores("eng_Latn-xxx_Latn")


@pytest.mark.parametrize("pair", ["eng_Latn", "eng_Latn-", "a-b-c"])
def test_bad_pair(pair):
    with pytest.raises(KSLError, match="SRC-TGT"):
        data.parse_pair(pair)


def test_missing_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("KSL_DATA_DIR", raising=False)
    with pytest.raises(KSLError, match="KSL_DATA_DIR"):
        data.load_flores("eng_Latn-cat_Latn")
    monkeypatch.setenv("KSL_DATA_DIR", str(tmp_path))
    with pytest.raises(KSLError, match="has no flores200/"):
        data.load_flores("eng_Latn-cat_Latn")


def test_readers_agree(tmp_path):
    pairs = [("Hello.", "Hola."), ("Good night.", "Bona nit.")]
    (tmp_path / "a.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs))
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"en": s, "ca": t}) + "\n" for s, t in pairs))
    (tmp_path / "a.en").write_text("".join(s + "\n" for s, _ in pairs))
    (tmp_path / "a.ca").write_text("".join(t + "\n" for _, t in pairs))
    got = [data.read_tsv(tmp_path / "a.tsv", "eng_Latn", "cat_Latn"),
           data.read_jsonl(tmp_path / "a.jsonl", "eng_Latn", "cat_Latn", "en", "ca"),
           data.read_parallel(tmp_path / "a.en", tmp_path / "a.ca", "eng_Latn", "cat_Latn")]
    for b in got:
        assert list(zip(b.src, b.tgt)) == pairs
    assert len({b.sha256 for b in got}) == 1


def test_real_tatoeba_tsv(flores_dir):
    b = data.read_tsv(flores_dir / "parallel/eng-cat/tatoeba.eng-cat.tsv", "eng_Latn", "cat_Latn")
    assert len(b) == 5500


@pytest.mark.parametrize("src,tgt,match", [
    ("a\nb\nc\n", "x\ny\n", "3 source lines but 2 target lines"),
    ("a\n\nc\n", "x\ny\nz\n", "empty source segment at line 2"),
    ("a\nb\n", "x\n \n", "empty target segment at line 2"),
    ("", "", "no segments"),
])
def test_bad_bitext(tmp_path, src, tgt, match):
    (tmp_path / "s").write_text(src)
    (tmp_path / "t").write_text(tgt)
    with pytest.raises(KSLError, match=match):
        data.read_parallel(tmp_path / "s", tmp_path / "t", "eng_Latn", "cat_Latn")


def test_bad_encoding_names_line(tmp_path):
    (tmp_path / "s").write_bytes(b"ok\nbad \xff byte\n")
    (tmp_path / "t").write_text("x\ny\n")
    with pytest.raises(KSLError, match=r"not valid UTF-8 \(line 2\)"):
        data.read_parallel(tmp_path / "s", tmp_path / "t", "eng_Latn", "cat_Latn")


def test_bad_tsv_and_jsonl(tmp_path):
    (tmp_path / "a.tsv").write_text("one column only\n")
    with pytest.raises(KSLError, match="line 1 has 1 tab-separated columns"):
        data.read_tsv(tmp_path / "a.tsv", "eng_Latn", "cat_Latn")
    (tmp_path / "a.jsonl").write_text('{"src": "a"}\n')
    with pytest.raises(KSLError, match="line 1 is not a JSON object"):
        data.read_jsonl(tmp_path / "a.jsonl", "eng_Latn", "cat_Latn")


def _tarball(path, files):
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            blob = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


def test_download_unpacks_official_layout(tmp_path):
    # The official tarball nests dev/ and devtest/ under flores200_dataset/.
    archive = tmp_path / "flores200_dataset.tar.gz"
    _tarball(archive, {"flores200_dataset/dev/eng_Latn.dev": "Hi.\n", "flores200_dataset/dev/cat_Latn.dev": "Hola.\n",
                       "flores200_dataset/devtest/eng_Latn.devtest": "Bye.\n",
                       "flores200_dataset/devtest/cat_Latn.devtest": "Adeu.\n",
                       "flores200_dataset/README": "x\n"})
    dest = data.download_flores(tmp_path / "out", url=archive.as_uri())
    b = data.load_flores("eng_Latn-cat_Latn", "devtest", root=dest)
    assert (b.src, b.tgt) == (["Bye."], ["Adeu."])
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["flores200"]


def test_download_offline_is_one_clear_error(tmp_path):
    with pytest.raises(KSLError, match="cannot download FLORES-200.*KSL_DATA_DIR"):
        data.download_flores(tmp_path / "out", url="http://127.0.0.1:9/flores200_dataset.tar.gz", timeout=5)
    assert not (tmp_path / "out" / "flores200").exists()
    assert list((tmp_path / "out").iterdir()) == []
