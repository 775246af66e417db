"""Copy TensorFlow's generated protobuf modules out of a TensorFlow wheel, without the TensorFlow runtime.

Why: ``tensorflow_serving.apis`` imports ``tensorflow.core.{framework,example,protobuf}.*_pb2`` (tensor,
example, meta_graph, config, error codes and what they import), and those modules need only
``google.protobuf``. The whole ``tensorflow`` wheel is ~1.9 GB installed; its ``*_pb2.py`` files are under
1 MB. The image build installs ``tensorflow-serving-api --no-deps`` and runs this script on the downloaded
wheel to lay down a proto-only ``tensorflow`` package. Its ``__init__.py`` files are empty stubs: ``import
tensorflow`` succeeds in the image but has no ops, which is what we want: the agent never runs models itself
(validation happens inside TF Serving).

Usage: ``python extract_protos.py TENSORFLOW_WHEEL_OR_SITE_PACKAGES DEST_SITE_PACKAGES``
Fails (exit 1) if a copied module imports a ``tensorflow.*`` module that was not copied.
"""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path, PurePosixPath

_IMPORT = re.compile(r"^from (tensorflow(?:\.\w+)*) import (\w+)", re.MULTILINE)
_STUB = '"""Proto-only stub from docker/extract_protos.py; the TensorFlow runtime is not installed."""\n'


def _read_sources(origin: Path) -> dict[PurePosixPath, str]:
    """Every ``tensorflow/**/*_pb2.py`` in a wheel (zip) or an installed site-packages directory."""
    if origin.is_file():
        with zipfile.ZipFile(origin) as wheel:
            return {
                PurePosixPath(name): wheel.read(name).decode("utf-8")
                for name in wheel.namelist()
                if name.startswith("tensorflow/") and name.endswith("_pb2.py")
            }
    return {
        PurePosixPath(path.relative_to(origin).as_posix()): path.read_text(encoding="utf-8")
        for path in (origin / "tensorflow").rglob("*_pb2.py")
    }


def _unresolved(sources: dict[PurePosixPath, str]) -> list[str]:
    """``tensorflow.*`` imports that no copied module satisfies (so the copy would fail at import time)."""
    missing = []
    for path, text in sources.items():
        for package, name in _IMPORT.findall(text):
            target = PurePosixPath(*package.split("."), f"{name}.py")
            if target not in sources:
                missing.append(f"{path} imports {package}.{name}")
    return sorted(missing)


def extract(origin: Path, dest: Path) -> int:
    """Write the modules and stub ``__init__.py`` files under ``dest``; return how many were copied."""
    sources = _read_sources(origin)
    if not sources:
        raise SystemExit(f"no tensorflow/**/*_pb2.py found in {origin}")
    missing = _unresolved(sources)
    if missing:
        raise SystemExit("unresolved imports:\n  " + "\n  ".join(missing))
    for rel, text in sources.items():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        for package in list(rel.parents)[:-1]:
            init = dest / package / "__init__.py"
            if not init.exists():
                init.write_text(_STUB, encoding="utf-8")
    return len(sources)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    count = extract(Path(argv[1]), Path(argv[2]))
    print(f"copied {count} TensorFlow protobuf modules into {argv[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
