"""What the llama.cpp fixture scripts share: the build check and the fixture's JSON layout."""

import json
import re
import sys


def llama_build():
    """The running llama.cpp's x86 kernel set ("avx2", "avx512") and its system info line.

    Refuses a build with AMX kernels: they crash in VMs that do not grant the tile
    registers, and a -march=native build is tied to its host (scripts/llama_builds.sh
    pins the instruction set instead)."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode()
    if "AMX_INT8 = 1" in info:
        sys.exit(f"this llama.cpp has AMX kernels ({info.strip()}); use a pinned build: scripts/llama_builds.sh")
    isa = "avx512" if "AVX512 = 1" in info else "avx2" if "AVX2 = 1" in info else "generic"
    return isa, info.strip()


def compact_json(value):
    """Indented JSON with every list of plain numbers on one line: readable diffs, small file."""
    text = json.dumps(value, ensure_ascii=False, indent=1)
    compact = re.sub(r"\[[-\d.,e\s]*\]", lambda m: "[" + ", ".join(x.strip() for x in m.group(0)[1:-1].split(",") if x.strip()) + "]", text)
    # The pattern could also touch a bracketed run inside a string value: keep the plain
    # form unless the compact one decodes to the same data.
    return compact if json.loads(compact) == value else text
