"""Generates Python code for every .proto under proto/ into the package inferchain_pb.

protoc writes imports relative to the proto package (``from mlnode.v1 import ...``), which
would resolve to our own ``mlnode`` package. The generated modules are therefore rewritten to
import through ``inferchain_pb``; Cosmos protos come from cosmpy's copy (``cosmpy.protos``),
so no second copy of them is compiled.
"""

import re
import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "proto"
OUT = ROOT / "inferchain_pb"
OWN_PACKAGES = sorted(p.name for p in SRC.iterdir() if p.is_dir())
IMPORT = re.compile(rf"^from ({'|'.join(OWN_PACKAGES)})((?:\.\w+)*) import", re.MULTILINE)
EXTERNAL = re.compile(r"^from (cosmos|gogoproto|cosmos_proto|amino|tendermint)((?:\.\w+)*) import",
                      re.MULTILINE)


def main() -> int:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    sources = sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    args = ["protoc", f"-I{SRC}", f"-I{include}", f"--python_out={OUT}", f"--pyi_out={OUT}",
            f"--grpc_python_out={OUT}", *sources]
    if protoc.main(args) != 0:
        print("protoc failed", file=sys.stderr)
        return 1
    for path in OUT.rglob("*.py*"):
        text = IMPORT.sub(r"from inferchain_pb.\1\2 import", path.read_text())
        path.write_text(EXTERNAL.sub(r"from cosmpy.protos.\1\2 import", text))
    for folder in [OUT, *(p for p in OUT.rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    print(f"generated {len(sources)} proto file(s) into {OUT.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
