#!/usr/bin/env python3
"""Lists the library units a role build compiles that the full test build does not (same
package, version and features), from two `cargo ... -Z unstable-options --unit-graph` outputs.
Each one, and every unit above it, is compiled a second time in CI: hack/src/lib.rs says how
the list is kept empty. Exit status 1 when a unit other than the `trawl` and `trawl-hack` crates differs.

Usage: unit-drift.py FULL.json ROLE.json
"""

import json
import sys


def libraries(path):
    """package@version -> the feature sets it is compiled with, for the target's libraries."""
    with open(path) as f:
        graph = json.load(f)
    found = {}
    for unit in graph["units"]:
        if unit["mode"] != "build" or not {"lib", "rlib"} & set(unit["target"]["kind"]):
            continue
        package = unit["pkg_id"].rsplit("#", 1)[-1]
        found.setdefault(package, set()).add(tuple(sorted(unit["features"])))
    return found


def main():
    full, role = libraries(sys.argv[1]), libraries(sys.argv[2])
    drift = 0
    for package, feature_sets in sorted(role.items()):
        for features in sorted(feature_sets):
            if features in full.get(package, set()) or package.startswith(("trawl@", "trawl-hack@")):
                continue
            drift += 1
            wanted = sorted(full.get(package, {()}), key=len)[-1]
            print(f"{package}: {list(features)}; the full build has {list(wanted)}")
    print(f"{drift} units differ")
    sys.exit(1 if drift else 0)


if __name__ == "__main__":
    main()
