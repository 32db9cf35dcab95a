#!/usr/bin/env python3
"""libp2pia bootstrap: DHT server that helps peers find each other and publishes model manifests (no compute).

Thin shell: argparse → config → trio.run, all in libp2pia.node.run (the same entry point
`libp2pia swarm` starts). Run `python apps/bootstrap.py --help` for the options.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from libp2pia.node.run import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("bootstrap", prog="bootstrap.py"))
