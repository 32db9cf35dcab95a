#!/usr/bin/env python3
"""libp2pia relay: circuit relay v2 hop (with limits) for peers behind NAT.

Thin shell: argparse → config → trio.run, all in libp2pia.node.run (the same entry point
`libp2pia swarm` starts). Run `python apps/relay.py --help` for the options.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from libp2pia.node.run import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("relay", prog="relay.py"))
