"""The README's Python snippets run as written (with fewer training steps)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_snippets_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 2
    code = "\n".join(blocks).replace("range(2000)", "range(3)")
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert namespace["samples"].shape == (1000, 2)
    assert namespace["snapshot"].nodes["z"]["value"].shape == (256, 2)


def test_readme_gives_the_two_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text
    assert (README.parent / "docs" / "_static" / "report.png").is_file()
