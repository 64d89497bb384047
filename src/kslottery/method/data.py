"""Bitext: FLORES-200 and generic parallel files, validated on read.

FLORES lives in a folder laid out as ``flores200/{dev,devtest}/<code>.<split>`` found through
``$KSL_DATA_DIR`` (or an explicit ``data_dir``). Every reader returns a :class:`Bitext` whose
``sha256`` names its exact content, so run directories change when the data does.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .errors import KSLError

FLORES_URL = "https://dl.fbaipublicfiles.com/nllb/flores200_dataset.tar.gz"
FLORES_SPLITS = ("dev", "devtest")


@dataclass(frozen=True)
class Bitext:
    src_lang: str
    tgt_lang: str
    src: list[str]
    tgt: list[str]
    name: str

    def __len__(self) -> int:
        return len(self.src)

    @property
    def sha256(self) -> str:
        h = hashlib.sha256()
        for s, t in zip(self.src, self.tgt):
            h.update(s.encode() + b"\t" + t.encode() + b"\n")
        return h.hexdigest()

    def head(self, n: int | None) -> "Bitext":
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise KSLError(f"limit {n!r} is not a positive number of sentences",
                           "pass --limit N with N >= 1, or --limit none for all")
        if n is None or n >= len(self):
            return self
        return Bitext(self.src_lang, self.tgt_lang, self.src[:n], self.tgt[:n], f"{self.name}[:{n}]")

    def skip(self, n: int) -> "Bitext":
        """Everything after the first ``n`` pairs: held-out pairs beside the ones a run trains on."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise KSLError(f"offset {n!r} is not a number of sentences >= 0", "pass --offset N with N >= 0")
        if n >= len(self):
            raise KSLError(f"offset {n} leaves no sentence of {self.name} ({len(self)} pairs)",
                           f"pass an offset below {len(self)}")
        if n == 0:
            return self
        return Bitext(self.src_lang, self.tgt_lang, self.src[n:], self.tgt[n:], f"{self.name}[{n}:]")


def parse_pair(pair: str) -> tuple[str, str]:
    """``"eng_Latn-cat_Latn"`` -> ``("eng_Latn", "cat_Latn")``."""
    parts = pair.split("-")
    if len(parts) != 2 or not all(parts):
        raise KSLError(f"language pair {pair!r} is not of the form SRC-TGT",
                       "write it like eng_Latn-cat_Latn")
    if parts[0] == parts[1]:   # the prompt would ask to translate English into English: nothing to learn
        raise KSLError(f"language pair {pair!r} has the same source and target language",
                       "give two different languages, like eng_Latn-cat_Latn")
    return parts[0], parts[1]


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The folder that holds ``flores200/``: ``explicit``, else ``$KSL_DATA_DIR``."""
    raw = explicit if explicit is not None else os.environ.get("KSL_DATA_DIR")
    if not raw:
        raise KSLError("no data directory given",
                       "set KSL_DATA_DIR to a folder containing flores200/{dev,devtest}, "
                       "or run `kslottery download-flores DIR`")
    root = Path(raw).expanduser()
    if not (root / "flores200").is_dir():
        raise KSLError(f"data directory {root} has no flores200/ folder",
                       "point KSL_DATA_DIR at a folder containing flores200/{dev,devtest}, "
                       "or run `kslottery download-flores DIR`")
    return root


def flores_languages(split: str = "devtest", root: str | os.PathLike | None = None) -> list[str]:
    folder = data_dir(root) / "flores200" / split
    return sorted(p.name[: -len(split) - 1] for p in folder.glob(f"*.{split}"))


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise KSLError(f"data file {path} does not exist" if not path.exists() else f"{path} is not a file",
                       "check the path of the file you passed")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise KSLError(f"{path} is not valid UTF-8 (line {line})",
                       "re-encode the file as UTF-8") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    # Old Mac files end lines with CR alone; a file without a single LF would otherwise be one long segment.
    # (Only then: a stray CR inside a line of an LF file stays part of that line, as it always was.)
    lines = text.split("\n" if "\n" in text or "\r" not in text else "\r")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln.rstrip("\r") for ln in lines]


def _validate(src: list[str], tgt: list[str], name: str) -> None:
    if len(src) != len(tgt):
        raise KSLError(f"{name}: {len(src)} source lines but {len(tgt)} target lines",
                       "give line-aligned files with one segment per line")
    if not src:
        raise KSLError(f"{name}: no segments", "give a file with at least one sentence pair")
    for i, (s, t) in enumerate(zip(src, tgt), 1):
        if not s.strip() or not t.strip():
            side = "source" if not s.strip() else "target"
            raise KSLError(f"{name}: empty {side} segment at line {i}",
                           "remove empty lines or the pairs that contain them")


def load_flores(pair: str, split: str = "devtest", limit: int | None = None,
                root: str | os.PathLike | None = None, offset: int = 0) -> Bitext:
    """FLORES-200 sentences for ``pair`` (``SRC-TGT`` codes): ``limit`` lines after the first ``offset``."""
    if split not in FLORES_SPLITS:
        raise KSLError(f"unknown FLORES split {split!r}", f"use one of {', '.join(FLORES_SPLITS)}")
    src_lang, tgt_lang = parse_pair(pair)
    folder = data_dir(root) / "flores200" / split
    sides = []
    for code in (src_lang, tgt_lang):
        path = folder / f"{code}.{split}"
        if not path.is_file():
            have = flores_languages(split, root)
            raise KSLError(f"unknown language code {code!r} in {folder}",
                           f"use one of: {', '.join(have) or '(none found)'}")
        sides.append(_read_lines(path))
    _validate(sides[0], sides[1], f"flores200/{split}/{pair}")
    return Bitext(src_lang, tgt_lang, sides[0], sides[1], f"flores200-{split}-{pair}").skip(offset).head(limit)


def read_tsv(path: str | os.PathLike, src_lang: str, tgt_lang: str) -> Bitext:
    """One ``source<TAB>target`` pair per line."""
    path = Path(path)
    src, tgt = [], []
    for i, line in enumerate(_read_lines(path), 1):
        cols = line.split("\t")
        if len(cols) != 2:
            raise KSLError(f"{path}: line {i} has {len(cols)} tab-separated columns, not 2",
                           "write one source<TAB>target pair per line")
        src.append(cols[0])
        tgt.append(cols[1])
    _validate(src, tgt, str(path))
    return Bitext(src_lang, tgt_lang, src, tgt, path.name)


def read_jsonl(path: str | os.PathLike, src_lang: str, tgt_lang: str,
               src_key: str = "src", tgt_key: str = "tgt") -> Bitext:
    """One JSON object per line with ``src_key`` and ``tgt_key`` fields."""
    path = Path(path)
    src, tgt = [], []
    for i, line in enumerate(_read_lines(path), 1):
        try:
            obj = json.loads(line)
            src.append(obj[src_key])
            tgt.append(obj[tgt_key])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise KSLError(f"{path}: line {i} is not a JSON object with {src_key!r} and {tgt_key!r}",
                           "write one object per line, or pass the right field names") from None
        for key, value in ((src_key, src[-1]), (tgt_key, tgt[-1])):
            if not isinstance(value, str):   # a number or a list is no sentence: it failed later, as a traceback
                raise KSLError(f"{path}: line {i}: {key} is {type(value).__name__} {json.dumps(value)[:40]}, not a string",
                               "write each sentence as a JSON string")
    _validate(src, tgt, str(path))
    return Bitext(src_lang, tgt_lang, src, tgt, path.name)


def read_parallel(src_path: str | os.PathLike, tgt_path: str | os.PathLike,
                  src_lang: str, tgt_lang: str) -> Bitext:
    """Two line-aligned text files."""
    src, tgt = _read_lines(Path(src_path)), _read_lines(Path(tgt_path))
    name = f"{Path(src_path).name}+{Path(tgt_path).name}"
    _validate(src, tgt, name)
    return Bitext(src_lang, tgt_lang, src, tgt, name)


JSONL_SUFFIXES = (".jsonl", ".json")


def read_file(path: str | os.PathLike, src_lang: str, tgt_lang: str) -> Bitext:
    """A TSV (``source<TAB>target``) or, by its suffix, a JSONL file of ``{"src": ..., "tgt": ...}``."""
    reader = read_jsonl if Path(path).suffix.lower() in JSONL_SUFFIXES else read_tsv
    return reader(path, src_lang, tgt_lang)


def check_file_args(file: str | None, source_file: str | None, target_file: str | None,
                    flag: str = "--test-file") -> None:
    """One way of giving your own data at a time, and both sides of a pair of files."""
    if file and (source_file or target_file):
        raise KSLError(f"both {flag} and --source-file/--target-file given", "give one of the two")
    if bool(source_file) != bool(target_file):
        raise KSLError("--source-file and --target-file go together",
                       "give both line-aligned files (or one TSV/JSONL file)")


def load_bitext(pair: str, split: str = "devtest", limit: int | None = None, file: str | None = None,
                source_file: str | None = None, target_file: str | None = None,
                flag: str = "--test-file", offset: int = 0) -> Bitext:
    """FLORES ``pair`` / ``split``, or your own data: one TSV/JSONL ``file`` or two aligned text files.
    ``pair`` names the languages either way (the prompt says them)."""
    check_file_args(file, source_file, target_file, flag)
    if not (file or source_file):
        return load_flores(pair, split, limit=limit, offset=offset)
    src_lang, tgt_lang = parse_pair(pair)
    if file:
        return read_file(file, src_lang, tgt_lang).skip(offset).head(limit)
    return read_parallel(source_file, target_file, src_lang, tgt_lang).skip(offset).head(limit)


def download_flores(dest: str | os.PathLike, url: str = FLORES_URL, timeout: float = 60) -> Path:
    """Fetch the official FLORES-200 tarball and unpack ``dev/`` and ``devtest/`` into
    ``dest/flores200``. The folder appears only when complete."""
    dest = Path(dest).expanduser()
    final = dest / "flores200"
    if final.is_dir():
        return dest
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise KSLError(f"cannot create {dest}: {e.strerror}", "choose a writable folder") from None
    with tempfile.TemporaryDirectory(dir=dest, prefix=".flores-") as tmp:
        archive = Path(tmp) / "flores200.tar.gz"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r, open(archive, "wb") as f:
                shutil.copyfileobj(r, f)
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise KSLError(f"cannot download FLORES-200 from {url} ({reason})",
                           "download flores200_dataset.tar.gz elsewhere and unpack dev/ and devtest/ "
                           "into DIR/flores200, then set KSL_DATA_DIR=DIR") from None
        staged = Path(tmp) / "flores200"
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts
                split = next((p for p in parts if p in FLORES_SPLITS), None)
                if split is None or not member.isfile() or not parts[-1].endswith(f".{split}"):
                    continue
                out = staged / split / parts[-1]
                out.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(out, "wb") as f:
                    shutil.copyfileobj(src, f)
        if not all((staged / s).is_dir() for s in FLORES_SPLITS):
            raise KSLError(f"{url} does not contain dev/ and devtest/ folders",
                           "give the official flores200_dataset.tar.gz")
        staged.rename(final)
    return dest
