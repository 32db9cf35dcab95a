#!/usr/bin/env bash
# Regenerate libp2pia/wire/libp2pia_pb2.py (+ .pyi) from proto/libp2pia.proto with
# grpcio-tools' bundled protoc, so the output does not depend on a system protoc.
# tests/test_wire_proto.py checks the committed module is current. The output embeds the
# protoc version, so pyproject pins grpcio-tools (test extra) to the version that made it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m grpc_tools.protoc -I proto --python_out=libp2pia/wire --pyi_out=libp2pia/wire proto/libp2pia.proto
