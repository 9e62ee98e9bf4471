"""The (image, label) file pairs of a raw download, found through list files or folders: what the raw readers of
`harness.data.prepare` and `harness.data.raw_extra` share (a module of its own, so that neither imports the
other at load time)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.errors import DataError

from .layout import MAX_NAMED


@dataclass(frozen=True)
class RawPair:
    stem: str
    image: Path
    label: Path


# -- reading the raw layouts ---------------------------------------------------------------------------
def _find_list(raw: Path, candidates: tuple[str, ...], what: str) -> Path:
    for c in candidates:
        if (raw / c).is_file():
            return raw / c
    raise DataError(
        f"the {what} list is missing: looked for {', '.join(str(raw / c) for c in candidates)}. "
        f"Point --raw at the folder that holds it."
    )


def _listed_pairs(raw: Path, list_file: Path, image_dir: str, label_dir: str) -> list[RawPair]:
    stems = [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()]
    pairs = [RawPair(s, raw / image_dir / f"{s}.jpg", raw / label_dir / f"{s}.png") for s in stems]
    missing = [str(p) for pair in pairs for p in (pair.image, pair.label) if not p.is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} files named in {list_file} are missing: "
            f"{', '.join(missing[:MAX_NAMED])}{' ...' if len(missing) > MAX_NAMED else ''}. "
            f"The raw download is incomplete; re-extract it."
        )
    return pairs


def _folder_pairs(image_dir: Path, label_dir: Path) -> list[RawPair]:
    for d in (image_dir, label_dir):
        if not d.is_dir():
            raise DataError(f"the raw folder {d} does not exist; point --raw at the dataset's download folder.")
    labels = sorted(p for p in label_dir.glob("*.png"))
    pairs = [RawPair(p.stem, image_dir / f"{p.stem}.jpg", p) for p in labels]
    missing = [p.image.name for p in pairs if not p.image.is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} label maps in {label_dir} have no image in {image_dir}: "
            f"{', '.join(missing[:MAX_NAMED])}{' ...' if len(missing) > MAX_NAMED else ''}."
        )
    if not pairs:
        raise DataError(f"no label maps (*.png) in {label_dir}; is --raw the right folder?")
    return pairs
