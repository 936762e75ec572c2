"""`wimfs driver ...` through the command line: --json documents, exit codes, one line."""

from __future__ import annotations

import json
import re

from tests.servicing.drivers_helpers import stamp_viostor
from wimfs.cli import main


def test_driver_commands(target, tmp_path, capsys):
    inf = stamp_viostor(tmp_path / "viostor", "amd64")
    assert main(["driver", "add", target.spec, str(inf)]) == 9
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unsigned driver package refused" in err[0]
    assert main(["driver", "add", target.spec, str(inf), "--force-unsigned", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    [added] = doc["drivers"]
    assert added["status"] == "added" and re.fullmatch(r"oem\d+\.inf", added["published_name"])
    assert any(c["path"].endswith("viostor.sys") for c in doc["changes"])
    assert main(["driver", "list", target.spec, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(d["published_name"], d["original_name"], d["class_name"]) for d in listed] == \
        [(added["published_name"], "viostor.inf", "SCSIAdapter")]
    assert main(["driver", "list", target.spec, "--all", "--json"]) == 0
    everything = json.loads(capsys.readouterr().out)
    assert [(d["published_name"], d["inbox"]) for d in everything] == \
        [(added["published_name"], False), ("machine.inf", True)]
    assert main(["driver", "info", target.spec, added["published_name"]]) == 0
    out = capsys.readouterr().out
    assert "Service Name : viostor" in out and "Hardware ID : PCI\\VEN_1AF4&DEV_1001" in out
    assert main(["driver", "remove", target.spec, "oem999.inf"]) == 4
    assert main(["driver", "remove", target.spec, added["published_name"]]) == 0
    assert main(["driver", "list", target.spec]) == 0
    assert "No third-party driver packages." in capsys.readouterr().out
