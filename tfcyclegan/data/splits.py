"""A domain's splits, defined once: the folders of a dataset, which images a command scores
or shows, and which of them can be read.

    <dataset>/trainA, trainB, testA, testB    SPLIT_FOLDERS: the Berkeley layout, which
                                              `download` unpacks and the demo data imitates

Training reads a domain's training images. What is scored or shown (evaluate, study, the
export's parity check) is its test images, or its training images when it has none
(`shown`; evaluate then holds some of them out from its classifier). Only the images
that decode are used, each other file named once (`readable`).
"""

from tfcyclegan.data import imagefiles
from tfcyclegan.util import report
from tfcyclegan.util.errors import UserError

SPLIT_FOLDERS = ("trainA", "trainB", "testA", "testB")
TEST, TRAIN = "test", "train"


def shown(domain):
    """(files, split) to score or show of a datasets.Domain: its test images, else its training images."""
    return (domain.test_files, TEST) if domain.test_files else (domain.train_files, TRAIN)


def readable(files, what, label, domain, log=report.note):
    """The files of `domain` (a datasets.Domain, its `label` A or B) that decode, in order;
    each other one is noted as skipped, with why, and none at all is a UserError. `what`
    names the images in that message ("training", "test", "held-out")."""
    good, bad = imagefiles.scan_images(files)
    for path, reason in bad:
        log(f"skipping {path}: {reason}")
    if not good:
        raise UserError(f"domain {label} ({domain.name}) has no readable {what} image; check {domain.root}")
    return good
