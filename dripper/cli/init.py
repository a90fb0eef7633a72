"""`dripper init [DIR]`: scaffold a working project."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from dripper.cli.common import config_option
from dripper.errors import InputError

SCAFFOLD = Path(__file__).resolve().parent.parent / "scaffold"
# config.toml, the example campaigns (+ newsletter editions), their templates, sample customers
ITEMS = ("config.toml", "campaigns", "templates", "customers.csv")


def scaffold_files() -> list[Path]:
    """Every file `init` writes, relative to the project folder."""
    files: list[Path] = []
    for item in ITEMS:
        source = SCAFFOLD / item
        if source.is_dir():
            files += sorted(
                p.relative_to(SCAFFOLD)
                for p in source.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts
            )
        else:
            files.append(Path(item))
    return files


@click.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
@config_option
def init(directory: Path, force: bool) -> None:
    """Scaffold config.toml, the example campaigns, their templates and sample customers."""
    files = scaffold_files()
    existing = [f for f in files if (directory / f).exists()]
    if existing and not force:
        shown = ", ".join(str(directory / f) for f in existing[:3])
        more = f" and {len(existing) - 3} more" if len(existing) > 3 else ""
        raise InputError(f"{shown}{more} already exist; nothing written (use --force to overwrite)")
    for f in files:
        target = directory / f
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SCAFFOLD / f, target)
    where = "" if directory == Path(".") else f"cd {directory} && "
    dripper = _program(directory)
    click.echo(f"Wrote {len(files)} files to {directory}/. Next:")
    click.echo(f"  {where}{dripper} check   # load and verify every campaign")
    click.echo(f"  {where}{dripper} customers import customers.csv")
    click.echo(f"  {where}{dripper} event purchase ada@example.com --data '{{\"amount\": 24}}'")


def _program(directory: Path) -> str:
    """How to run this dripper from `directory`: `dripper` when that is what PATH finds,
    else the path of the program that is running (`../.venv/bin/dripper` after
    `make demo`), so every hint can be pasted as it is."""
    import os
    import sys

    program = Path(sys.argv[0])
    if program.name != "dripper":  # run as a module or from a test
        return "dripper"
    on_path = shutil.which("dripper")
    if on_path is not None and Path(on_path).resolve() == program.resolve():
        return "dripper"
    relative = os.path.relpath(program.absolute(), directory.absolute())
    absolute = str(program.absolute())
    return relative if len(relative) <= len(absolute) else absolute
