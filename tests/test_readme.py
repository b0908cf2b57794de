"""The README's two set-up commands are the ones CI runs."""

import re
from pathlib import Path

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_ci_commands_match_the_visible_commands():
    for tag in ("install", "test"):
        (ci,) = re.findall(rf"^<!-- ci:{tag} -->\s*(.+)$", README, flags=re.M)
        block = README.split(f"<!-- ci:{tag} -->", 1)[1]
        shown = re.search(r"```bash\n(.+?)\n```", block, flags=re.S).group(1).strip()
        assert shown == ci.strip(), tag


def test_ci_script_reads_the_readme():
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert "ci:install" in ci and "ci:test" in ci


def test_readme_says_what_the_browser_check_needs():
    assert "apt-get install chromium" in README
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert "SMARTIESVIZ_REQUIRE_BROWSER=1" in ci and "SMARTIESVIZ_REQUIRE_BROWSER" in README
    assert "git status --porcelain" in ci  # the checkout must be left as found
