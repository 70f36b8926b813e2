"""What crosses the ML node's boundary loads without torch, so an API node host needs none."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_boundary_types_and_their_api_node_users_import_without_torch():
    code = ("import sys, mlnode.types, apinode.mlnode_client, apinode.validation.figures, "
            "apinode.poc.params; assert 'torch' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
