"""What an `mlops run` summary says of its outcome, read back by the benches that run the CLI."""
import re
from typing import Dict


def outcome(out: str) -> Dict[str, object]:
    """blessed (and why), pushed, the TF Lite variants shipped, and the failure line, where the
    summary has them."""
    facts: Dict[str, object] = {}
    blessed = re.search(r"^blessed: (yes|no) \((.*)\)$", out, re.M)
    if blessed:
        facts["blessed"], facts["blessing_reason"] = blessed.group(1) == "yes", blessed.group(2)
    facts["pushed"] = bool(re.search(r"^serving version: .* \[pushed\]$", out, re.M))
    # the edge lines: "  float32   31.1 KiB  max|diff| ...  shipped"
    facts["edge_shipped"] = re.findall(r"^  (\w+)\s+[\d.]+ KiB .*  shipped$", out, re.M)
    failed = re.search(r"^(FAILED: .*|mlops: error: .*)$", out, re.M)
    if failed:
        facts["error"] = failed.group(1)
    return facts
