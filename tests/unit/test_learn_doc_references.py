"""The sections of docs/rules.md that a learned draft sends its reader to exist.

A draft's comments cite the reference by section name (``docs/rules.md, "resources"``);
a renamed section would leave every draft pointing at nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.cli import gatehold

REPO = Path(__file__).resolve().parents[2]
RULES_DOC = REPO / "docs" / "rules.md"
CITED = re.compile(r'docs/rules\.md, "([^"]+)"')
LOG = "\n".join(
    f'127.0.0.1 - - [29/Nov/2026:10:00:00 +0000] "GET {path} HTTP/1.1" 200 10 "-" "curl"'
    for path in ("/api/invoices", "/api/invoices/7", "/api/invoices/8")
)


def test_every_section_a_draft_cites_is_a_heading_of_the_rules_reference(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(LOG + "\n")
    learned = gatehold("rules", "learn", "--access-log", str(log))
    assert learned.returncode == 0, learned.stderr
    comments = re.sub(r"\n\s*#\s+", " ", learned.stdout)  # a wrapped comment is one text
    cited = set(CITED.findall(comments))
    assert cited == {"resources", "Protecting list and search endpoints"}, cited
    headings = {
        line.lstrip("#").strip()
        for line in RULES_DOC.read_text().splitlines()
        if line.startswith("#")
    }
    assert cited <= headings, cited - headings
