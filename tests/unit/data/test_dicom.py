"""DICOM decoding: 16-bit precision, MONOCHROME1, windowing and rescale, errors naming the file."""

import numpy as np
import pytest
from dicom_files import write_dicom

from hkd.data.decode import decode_image
from hkd.data.dicom import decode_dicom, dicom_size
from hkd.data.formats.folder import image_size
from hkd.errors import InputError

RAMP = np.tile(np.arange(0, 4000, 100, dtype=np.uint16), (30, 1))  # 30 x 40, 12-bit values


def test_monochrome2_keeps_16_bit_precision_and_orientation(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", RAMP)
    image = decode_dicom(path)
    assert image.shape == (30, 40) and image.dtype == np.float32
    assert image[0, 0] == 0.0 and image[0, -1] == 1.0
    assert len(np.unique(image[0])) == 40  # 40 distinct 12-bit levels survive, nothing rounded to 8 bits
    assert dicom_size(path) == (40, 30) and image_size(path, "row 2") == (40, 30)


def test_monochrome1_is_inverted(tmp_path):
    plain = decode_dicom(write_dicom(tmp_path / "a.dcm", RAMP))
    inverted = decode_dicom(write_dicom(tmp_path / "b.dcm", RAMP, photometric="MONOCHROME1"))
    np.testing.assert_allclose(inverted, 1.0 - plain)


def test_window_clips_outside_values_and_rescale_is_applied(tmp_path):
    windowed = decode_dicom(write_dicom(tmp_path / "w.dcm", RAMP, window=(2000, 1000)))
    row = windowed[0]
    assert row[:15].max() == 0.0 and row[26:].min() == 1.0  # below 1500 black, above 2500 white
    assert 0.0 < row[20] < 1.0
    rescaled = decode_dicom(write_dicom(tmp_path / "r.dcm", RAMP, slope=2.0, intercept=-1024,
                                        window=(2000, 1000)))
    assert not np.allclose(rescaled, windowed)  # the window applies to rescaled (modality) values


def test_decode_image_gives_channels(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", RAMP)
    assert decode_image(path, 1).shape == (1, 30, 40)
    assert decode_image(path, 3).shape == (3, 30, 40)


def test_broken_dicom_names_the_file(tmp_path):
    path = tmp_path / "broken.dcm"
    path.write_bytes(b"not a dicom file at all")
    with pytest.raises(InputError, match="row 9: cannot read DICOM file .*broken.dcm"):
        decode_dicom(path, "row 9")


def test_dicom_is_recognised_by_content_whatever_the_name(tmp_path):
    from hkd.data.dicom import is_dicom

    pixels = np.tile(np.arange(40, dtype=np.uint16), (40, 1)) * 50
    unnamed = write_dicom(tmp_path / "IM0001", pixels)  # PACS exports often have no suffix
    assert is_dicom(unnamed) and decode_image(unnamed, 1).shape == (1, 40, 40)
    png = tmp_path / "scan.dcm.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    assert not is_dicom(png)
    assert is_dicom(tmp_path / "missing.dcm")  # unreadable: judged by its suffix


def test_the_header_gives_sex_age_and_view_for_subgroup_reports(tmp_path):
    import pydicom

    from hkd.data.dicom import image_metadata
    from hkd.data.image_record import Record

    path = write_dicom(tmp_path / "x.dcm", np.zeros((8, 8)))
    dataset = pydicom.dcmread(path)
    dataset.PatientSex, dataset.PatientAge, dataset.ViewPosition = "F", "045Y", "PA"
    dataset.save_as(path)
    assert image_metadata(Record(path, "a", "p")) == {"sex": "F", "age": "045Y", "view": "PA"}
    # what the loader read comes first
    assert image_metadata(Record(path, "a", "p", metadata={"site": "A"})) == {"site": "A"}
