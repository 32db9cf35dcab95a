"""The committed libp2pia_pb2 module is what scripts/gen_proto.sh generates from proto/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]


def test_generated_module_is_current(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", str(ROOT / "proto"), f"--python_out={tmp_path}",
         f"--pyi_out={tmp_path}", str(ROOT / "proto" / "libp2pia.proto")],
        check=True, capture_output=True, timeout=60,
    )
    for name in ("libp2pia_pb2.py", "libp2pia_pb2.pyi"):
        fresh = (tmp_path / name).read_text()
        committed = (ROOT / "libp2pia" / "wire" / name).read_text()
        assert committed == fresh, f"libp2pia/wire/{name} is stale: run scripts/gen_proto.sh"
