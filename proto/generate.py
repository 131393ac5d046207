"""Generate the Python code of the gRPC contracts, or check it is current.

    python proto/generate.py            # regenerate doudi/<service>/v1/*_pb2*.py(i)
    python proto/generate.py --check    # fail if the committed code is stale
    python proto/generate.py --lint BUF # also lint the protos with buf (STANDARD rules)

The code lands beside the proto package's name (``doudi.settlement.v1`` in
``doudi/settlement/v1/``), with mypy stubs from mypy-protobuf, and is committed:
never edit it by hand. ``make proto`` and ``make proto-check`` call this.
"""

from __future__ import annotations

import argparse
import filecmp
import subprocess
import sys
import tempfile
from pathlib import Path

import google.type.date_pb2
import grpc_tools

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
# googleapis-common-protos ships google/type/*.proto beside its Python code;
# grpc_tools ships google/protobuf/*.proto.
GOOGLEAPIS_DIR = Path(google.type.date_pb2.__file__).resolve().parent.parent.parent
WELL_KNOWN_DIR = Path(grpc_tools.__file__).resolve().parent / "_proto"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def proto_files() -> list[Path]:
    return sorted((PROTO_DIR / "doudi").rglob("*.proto"))


def protoc(*args: str) -> None:
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{GOOGLEAPIS_DIR}",
        f"-I{WELL_KNOWN_DIR}",
        *args,
        *(str(path.relative_to(PROTO_DIR)) for path in proto_files()),
    ]
    subprocess.run(command, check=True, cwd=PROTO_DIR)


def generate(out: Path) -> list[Path]:
    """Write the generated modules (and their packages' ``__init__.py``) under ``out``."""
    bin_dir = Path(sys.executable).parent
    protoc(
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out=quiet:{out}",
        f"--mypy_grpc_out=quiet:{out}",
    )
    written: list[Path] = []
    for proto in proto_files():
        package_dir = out / proto.parent.relative_to(PROTO_DIR)
        # doudi/<service>/ and doudi/<service>/v1/ become packages; doudi/ already is one.
        for directory in (package_dir.parent, package_dir):
            (directory / "__init__.py").touch()
        written.extend(sorted(package_dir.glob("*.py*")))
    return written


def generated_in(root: Path) -> set[Path]:
    """Generated files under ``root``, relative to it (the packages' ``__init__.py`` included)."""
    found: set[Path] = set()
    for proto in proto_files():
        package_dir = root / proto.parent.relative_to(PROTO_DIR)
        for path in package_dir.glob("*"):
            if path.name.endswith(GENERATED_SUFFIXES) or path.name == "__init__.py":
                found.add(path.relative_to(root))
    return found


def check() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        expected = generated_in(fresh)
        committed = generated_in(ROOT)
        stale = sorted(
            str(path)
            for path in expected
            if path not in committed or not filecmp.cmp(fresh / path, ROOT / path, shallow=False)
        )
        extra = sorted(str(path) for path in committed - expected)
    if stale or extra:
        for path in stale:
            print(f"stale or missing: {path}", file=sys.stderr)
        for path in extra:
            print(f"generated from no proto: {path}", file=sys.stderr)
        print("run `make proto` and commit the result", file=sys.stderr)
        return 1
    print(f"generated code is current ({len(expected)} files)")
    return 0


def lint(buf: str) -> int:
    """Lint with buf, reading the protos through protoc so the googleapis imports resolve."""
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "image.binpb"
        protoc("--include_imports", "--include_source_info", f"--descriptor_set_out={image}")
        paths = [str(path.relative_to(PROTO_DIR)) for path in proto_files()]
        command = [buf, "lint", str(image), "--config", str(PROTO_DIR / "buf.yaml")]
        for path in paths:
            command += ["--path", path]
        result = subprocess.run(command, check=False)
    if result.returncode == 0:
        print(f"buf lint: {len(paths)} protos clean")
    return result.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if generated code is stale")
    parser.add_argument("--lint", metavar="BUF", help="also run `BUF lint` on the protos")
    args = parser.parse_args()
    status = 0
    if args.lint:
        status |= lint(args.lint)
    if args.check:
        status |= check()
    elif not args.lint:
        for path in generate(ROOT):
            print(path.relative_to(ROOT))
    return status


if __name__ == "__main__":
    sys.exit(main())
