"""`tfcyclegan check-data` (cli/check_data.py): every unreadable file listed once with its reason,
named pipes skipped, and a failure when nothing is readable."""

from click.testing import CliRunner
from helpers import BAD, READABLE, UNREADABLE, assert_one_line_error, fifo, invoke, save
from PIL import Image
from tfcyclegan_cli.check_data import check_data

# --- tfcyclegan check-data --------------------------------------------------------


def test_check_data_lists_bad_files(bad_folder):
    save(bad_folder / "ok.png", Image.new("RGB", (4, 4)))
    result = CliRunner().invoke(check_data, [str(bad_folder)])
    assert result.exit_code == 0
    for name, (_, reason) in BAD.items():
        assert f"{bad_folder / name}: {reason}\n" in result.output
    assert f"1 readable, {len(BAD)} unreadable of {len(BAD) + 1} image files" in result.output


def test_check_data_fails_when_nothing_is_readable(bad_folder, tmp_path):
    result = CliRunner().invoke(check_data, [str(bad_folder)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("error: no readable image under")
    result = CliRunner().invoke(check_data, [str(tmp_path / "missing")])
    assert result.exit_code == 1 and "error: " in result.output and "no such folder" in result.output


def test_check_data_lists_a_named_pipe_and_goes_on(tmp_path):
    Image.new("RGB", (16, 16)).save(tmp_path / "good.png")
    with fifo(tmp_path / "pipe.jpg"):
        result = invoke("check-data", tmp_path)
    assert result.exit_code == 0, result.output
    assert f"{tmp_path / 'pipe.jpg'}: not a regular file (a named pipe); only image files are read" in result.stdout
    assert "1 readable, 1 unreadable of 2 image files" in result.stdout


def test_check_data_reports_every_problem_without_training(domains, locked):
    result = invoke("check-data", domains / "corpus")
    assert result.exit_code == 0, result.output
    for name, reason in UNREADABLE.items():
        assert result.stdout.count(f"{domains / 'corpus' / name}: {reason}\n") == 1
    total = READABLE + len(UNREADABLE)
    assert result.stdout.splitlines()[-1] == (
        f"{READABLE} readable, {len(UNREADABLE)} unreadable of {total} image files under {domains / 'corpus'}"
    )
    assert_one_line_error(invoke("check-data", domains / "empty"), f"{domains / 'empty'} holds no image files")
