"""The CLI: every command has help, --version works, user errors are one line."""
import subprocess
import sys

import pytest
from click.testing import CliRunner

from rankiqa import __version__
from rankiqa.cli import COMMANDS, cli, main


def _walk(command, path):
    yield path, command
    if hasattr(command, "list_commands"):
        ctx = command.make_context(path[-1], ["--help"], resilient_parsing=True)
        for name in command.list_commands(ctx):
            yield from _walk(command.get_command(ctx, name), [*path, name])


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_and_subcommand_has_help(name):
    runner = CliRunner()
    for path, command in _walk(cli.get_command(None, name), [name]):
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, result.output
        assert command.help and command.help.strip(), f"{' '.join(path)} has no help text"
        assert "Usage:" in result.output


def test_version_and_short_help():
    runner = CliRunner()
    assert __version__ in runner.invoke(cli, ["--version"]).output
    result = runner.invoke(cli, ["-h"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


def test_score_help_says_patch_positions_are_seeded_by_the_image_size():
    help_text = " ".join(CliRunner().invoke(cli, ["score", "--help"]).output.split())
    assert "seeded by --seed and the image's size" in help_text
    assert "mixed with each image's size, never its pixels or name" in help_text


def test_python_dash_m_works():
    result = subprocess.run([sys.executable, "-m", "rankiqa", "--help"], capture_output=True, text=True, check=True)
    assert "rankiqa" in result.stdout


def test_user_error_is_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["distortions", "show", "/nonexistent/image.png", "--out", "/tmp/x.png"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("Error: ")
    assert "/nonexistent/image.png" in err


def test_unknown_distortion_name_is_one_line_with_suggestion(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["distortions", "show", "x.png", "--out", "/tmp/x.png", "--names", "gausian_blur"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "gaussian_blur" in err
