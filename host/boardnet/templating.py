"""The jinja2 environments every generated file comes from.

Templates are real C and Python files under templates/; StrictUndefined makes a missing
value an error instead of a silent blank.
"""

from __future__ import annotations

from functools import cache

import jinja2


@cache
def environment() -> jinja2.Environment:
    """For C: block tags keep their lines, as the C templates are laid out."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("boardnet", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


@cache
def python_environment() -> jinja2.Environment:
    """For Python: block tags take their own line away, since indentation is the syntax."""
    return environment().overlay(trim_blocks=True, lstrip_blocks=True)


def render(template: str, **context) -> str:
    """Render a Python template."""
    return python_environment().get_template(template).render(**context)


@cache
def helper(name: str) -> str:
    """A helper source file under templates/ (real C, compiled and tested on its own), as
    text for a template to copy in whole: no jinja syntax is read inside it."""
    loader = environment().loader
    assert loader is not None
    return loader.get_source(environment(), name)[0]
