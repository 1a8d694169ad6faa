"""The SIIM, RSNA and VinDr loaders on tiny copies written in each data set's exact layout."""


import pytest
from dicom_files import PIXELS, write_csv, write_dicom

from hkd.config import load_config
from hkd.data.formats import load_records
from hkd.errors import InputError
from hkd.run.build import data_source


def data_config(tmp_path, data_format, *overrides):
    return load_config("quickstart", [f"data.format={data_format}", f"data.root={tmp_path}",
                                      f"data.cache_dir={tmp_path / 'cache'}", *overrides])


def siim(root):
    write_csv(root / "train_study_level.csv",
              ["id", "Negative for Pneumonia", "Typical Appearance", "Indeterminate Appearance",
               "Atypical Appearance"],
              [["s1_study", 0, 1, 0, 0], ["s2_study", 1, 0, 0, 0]])
    write_csv(root / "train_image_level.csv", ["id", "boxes", "label", "StudyInstanceUID"], [
        ["i1_image", "[{'x': 4.0, 'y': 5.0, 'width': 10.0, 'height': 8.0}, "
                     "{'x': 20, 'y': 6, 'width': 12, 'height': 9}]", "opacity 1 4 5 14 13", "s1"],
        ["i2_image", "[{'x': 1, 'y': 1, 'width': 5, 'height': 5}]", "opacity 1 1 1 6 6", "s1"],
        ["i3_image", "", "none 1 0 0 1 1", "s2"]])
    for study, series, image in (("s1", "a", "i1"), ("s1", "a", "i2"), ("s2", "b", "i3")):
        write_dicom(root / "train" / study / series / f"{image}.dcm", PIXELS, photometric="MONOCHROME1")


def rsna(root):
    write_csv(root / "stage_2_train_labels.csv", ["patientId", "x", "y", "width", "height", "Target"], [
        ["p1", 2, 3, 10, 12, 1], ["p1", 25, 3, 10, 12, 1], ["p2", "", "", "", "", 0],
        ["p3", "", "", "", "", 0]])
    write_csv(root / "stage_2_detailed_class_info.csv", ["patientId", "class"], [
        ["p1", "Lung Opacity"], ["p1", "Lung Opacity"], ["p2", "Normal"],
        ["p3", "No Lung Opacity / Not Normal"]])
    for patient in ("p1", "p2", "p3"):
        write_dicom(root / "stage_2_train_images" / f"{patient}.dcm", PIXELS)


def vindr(root):
    header = ["image_id", "class_name", "class_id", "rad_id", "x_min", "y_min", "x_max", "y_max"]
    write_csv(root / "train.csv", header, [
        ["v1", "Consolidation", 4, "R1", 2, 3, 12, 15], ["v1", "Infiltration", 6, "R2", 3, 4, 14, 16],
        ["v1", "Cardiomegaly", 3, "R3", 10, 20, 30, 35],
        ["v2", "No finding", 14, "R1", "", "", "", ""], ["v2", "No finding", 14, "R2", "", "", "", ""],
        ["v3", "Nodule/Mass", 8, "R1", 5, 5, 9, 9]])
    for image in ("v1", "v2", "v3"):
        write_dicom(root / "train" / f"{image}.dicom", PIXELS, window=(1500, 2000))


def test_siim_covid_joins_study_labels_and_image_boxes(tmp_path):
    siim(tmp_path)
    records, classes = load_records(data_source(data_config(tmp_path, "siim-covid")), 0)
    assert classes == ["negative", "typical", "indeterminate", "atypical"]
    by_name = {r.path.stem: r for r in records}
    assert {n: (r.label, r.patient_id) for n, r in by_name.items()} == {
        "i1": ("typical", "s1"), "i2": ("typical", "s1"), "i3": ("negative", "s2")}
    assert [region.bounds() for region in by_name["i1"].relevant] == [(4, 5, 14, 13), (20, 6, 32, 15)]
    assert not by_name["i3"].has_prior


def test_rsna_groups_box_rows_per_patient_with_detailed_classes(tmp_path):
    rsna(tmp_path)
    records, classes = load_records(data_source(data_config(tmp_path, "rsna-pneumonia")), 0)
    assert classes == ["normal", "not_normal", "opacity"]
    by_name = {r.patient_id: r for r in records}
    assert {p: r.label for p, r in by_name.items()} == {"p1": "opacity", "p2": "normal", "p3": "not_normal"}
    assert [region.bounds() for region in by_name["p1"].relevant] == [(2, 3, 12, 15), (25, 3, 35, 15)]
    (tmp_path / "stage_2_detailed_class_info.csv").unlink()
    records, classes = load_records(data_source(data_config(tmp_path, "rsna-pneumonia")), 0)
    assert classes == ["no_opacity", "opacity"] and sorted(r.label for r in records) == [
        "no_opacity", "no_opacity", "opacity"]


def test_vindr_merges_readers_and_drops_unmapped_images(tmp_path):
    vindr(tmp_path)
    records, classes = load_records(data_source(data_config(tmp_path, "vindr-cxr")), 0)
    assert classes == ["opacity", "no_finding"]
    assert {r.patient_id: r.label for r in records} == {"v1": "opacity", "v2": "no_finding"}  # v3 dropped
    v1 = next(r for r in records if r.patient_id == "v1")
    assert [region.bounds() for region in v1.relevant] == [(2, 3, 12, 15), (3, 4, 14, 16)]  # not cardiomegaly


def vindr_physionet(root):
    """The same three images in PhysioNet's layout, plus v4 known only from a global label."""
    (root / "annotations").mkdir(parents=True)
    header = ["image_id", "rad_id", "class_name", "x_min", "y_min", "x_max", "y_max"]
    write_csv(root / "annotations" / "annotations_train.csv", header, [
        ["v1", "R1", "Consolidation", 2, 3, 12, 15], ["v1", "R2", "Infiltration", 3, 4, 14, 16],
        ["v1", "R3", "Cardiomegaly", 10, 20, 30, 35], ["v3", "R1", "Nodule/Mass", 5, 5, 9, 9]])
    write_csv(root / "annotations" / "image_labels_train.csv",
              ["image_id", "rad_ID", "Pneumonia", "Nodule/Mass", "No finding"], [
                  ["v1", "R1", 1, 0, 0], ["v2", "R1", 0, 0, 1], ["v2", "R2", 0, 0, 1],
                  ["v3", "R1", 0, 1, 0], ["v4", "R2", 1, 0, 0]])
    for image in ("v1", "v2", "v3", "v4"):
        write_dicom(root / "train" / f"{image}.dicom", PIXELS, window=(1500, 2000))


def test_vindr_physionet_layout_adds_global_labels_without_boxes(tmp_path):
    vindr_physionet(tmp_path)
    finding_map = "data.finding_map={Consolidation: opacity, Infiltration: opacity, Pneumonia: opacity, " \
                  "'No finding': no_finding}"
    records, classes = load_records(data_source(data_config(tmp_path, "vindr-cxr", finding_map)), 0)
    assert classes == ["opacity", "no_finding"]
    by_id = {r.patient_id: r for r in records}
    assert {i: r.label for i, r in by_id.items()} == {"v1": "opacity", "v2": "no_finding", "v4": "opacity"}
    assert [region.bounds() for region in by_id["v1"].relevant] == [(2, 3, 12, 15), (3, 4, 14, 16)]
    assert by_id["v4"].relevant == [] and not by_id["v4"].has_prior  # a global label has no box
    labels = tmp_path / "annotations" / "image_labels_train.csv"
    labels.write_text(labels.read_text().replace("v4,R2,1,0,0", "v4,R2,2,0,0"))
    with pytest.raises(InputError, match=r"image_labels_train.csv row 6: column 'Pneumonia' must be 0 or 1"):
        load_records(data_source(data_config(tmp_path, "vindr-cxr", finding_map)), 0)


@pytest.mark.parametrize("layout, data_format, edit, message", [
    (siim, "siim-covid", lambda root: (root / "train" / "s2" / "b" / "i3.dcm").unlink(),
     "train_image_level.csv row 4: no DICOM file i3.dcm"),
    (siim, "siim-covid", lambda root: write_csv(
        root / "train_study_level.csv", ["id", "Negative for Pneumonia", "Typical Appearance",
                                         "Indeterminate Appearance", "Atypical Appearance"],
        [["s1_study", 1, 1, 0, 0]]), "train_study_level.csv row 2: expected exactly one class"),
    (siim, "siim-covid", lambda root: write_csv(
        root / "train_image_level.csv", ["id", "boxes", "StudyInstanceUID"],
        [["i1_image", "[{'x': 'left'}]", "s1"]]),
     "train_image_level.csv row 2: column 'x' must be a number"),
    (rsna, "rsna-pneumonia", lambda root: write_csv(
        root / "stage_2_train_labels.csv", ["patientId", "x", "y", "width", "height", "Target"],
        [["p1", 2, 3, 10, 12, 1], ["p2", 1, 1, -4, 2, 1]]),
     "stage_2_train_labels.csv row 3: box has no area"),
    (rsna, "rsna-pneumonia", lambda root: write_csv(
        root / "stage_2_train_labels.csv", ["patientId", "x", "y", "width", "Target"], [["p1", 2, 3, 10, 1]]),
     "stage_2_train_labels.csv: missing column.* height"),
    (vindr, "vindr-cxr", lambda root: (root / "train" / "v2.dicom").unlink(),
     "train.csv row 5: no DICOM file v2.dicom"),
])
def test_bad_layouts_name_file_and_row(tmp_path, layout, data_format, edit, message):
    layout(tmp_path)
    edit(tmp_path)
    with pytest.raises(InputError, match=message):
        load_records(data_source(data_config(tmp_path, data_format)), 0)
