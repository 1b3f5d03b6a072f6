"""The canonical text rendering that language-model backbones see (changing it breaks saved models)."""

import numpy as np

from geovec.inputs import (RENDERING_VERSION, BoxSegment, ImageSegment, Interleaved, PointSegment, TextSegment,
                           render_box, render_point, render_text)


def test_box_on_the_0_1000_grid():
    assert render_box((0.0, 0.0, 1.0, 1.0)) == "<box>(0,0),(1000,1000)</box>"
    assert render_box((0.1234, 0.5, 0.9995, 0.0004)) == "<box>(123,500),(1000,0)</box>"


def test_pixel_box_is_normalised_by_its_own_image():
    image = ImageSegment(np.zeros((200, 400, 3), np.uint8))  # 400 wide, 200 high
    item = Interleaved((image, BoxSegment((100, 50, 300, 150), "pixel")))
    assert render_text(item) == "<image> <box>(250,250),(750,750)</box>"


def test_point_latitude_first_four_decimals():
    assert render_point(52.37, 4.9) == "<loc>52.3700, 4.9000</loc>"
    assert render_point(-33.868820, 151.209296) == "<loc>-33.8688, 151.2093</loc>"
    assert render_point(-0.00001, 0.0) == "<loc>0.0000, 0.0000</loc>"


def test_whole_input_with_instruction_first():
    item = Interleaved((TextSegment("a port"), PointSegment(51.9, 4.48)), instruction="Find the place")
    assert render_text(item) == "Find the place\na port <loc>51.9000, 4.4800</loc>"
    assert render_text(item, include_instruction=False) == "a port <loc>51.9000, 4.4800</loc>"
    assert RENDERING_VERSION == 1
