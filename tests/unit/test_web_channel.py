"""What the page makes of the channel pointer for the version it holds (web/src/channel.js), run in Node as
the page runs it, on pointers the publisher wrote."""
from __future__ import annotations

import json

from components.tfjs_publisher import publish as pub
from testkit import browser as bh
from testkit.published import client_metadata, fake_tfjs_model


def withdrawn_of(versions: list[str], pointer: dict) -> list[str]:
    script = ("import { withdrawn } from './src/channel.js';"
              f"process.stdout.write(JSON.stringify({json.dumps(versions)}.filter((v) => withdrawn(v, {json.dumps(pointer)}))));")
    return bh.node_json(script)


def test_a_rolled_back_version_stays_withdrawn_as_the_channel_moves_on(tmp_path):
    """The page took withdrawn versions to be those newer than the channel's: once a newer model was
    published, a browser holding the bad one fell back to it when the new one could not be loaded."""
    base, versions = str(tmp_path / "origin"), ["1", "2", "3", "4", "5", "6"]
    for v in versions[:3]:
        pub.publish(fake_tfjs_model(tmp_path / f"src{v}", int(v)), base, "bloodcell", v, client_metadata())
    pub.point_latest(base, "bloodcell", "1", pinned=True)  # 2 and 3 were bad
    assert withdrawn_of(versions, pub.read_pointer(base, "bloodcell")) == ["2", "3"]
    pub.unpin(base, "bloodcell")
    pub.publish(fake_tfjs_model(tmp_path / "src4", 4), base, "bloodcell", "4", client_metadata())
    assert withdrawn_of(versions, pub.read_pointer(base, "bloodcell")) == ["2", "3"]
    # The rollback target and older versions were never withdrawn: a fine fallback when 4 cannot load.
    pub.publish(fake_tfjs_model(tmp_path / "src5", 5), base, "bloodcell", "5", client_metadata())
    pub.point_latest(base, "bloodcell", "4", pinned=True)
    assert withdrawn_of(versions, pub.read_pointer(base, "bloodcell")) == ["2", "3", "5"]
    # Rolled forward onto a withdrawn version on purpose: that one is the channel's again.
    pub.point_latest(base, "bloodcell", "3", pinned=True)
    assert withdrawn_of(versions, pub.read_pointer(base, "bloodcell")) == ["2", "4", "5"]


def test_a_pointer_of_an_older_publisher_still_withdraws_what_it_rolled_back_from():
    assert withdrawn_of(["6", "7", "8", "9"], {"version": "7", "pinned": True, "rolled_back_from": "8"}) == ["8"]


def test_an_open_page_is_told_of_a_rollback_and_of_a_newer_version():
    script = ("import { channelNews } from './src/channel.js';"
              "process.stdout.write(JSON.stringify([channelNews('8', {version: '7', withdrawn: ['8']}), "
              "channelNews('8', {version: '9'}), channelNews('8', {version: '8'})]));")
    news = bh.node_json(script)
    assert news[0]["withdrawn"] and "Version 8 was withdrawn" in news[0]["text"] and "version 7" in news[0]["text"]
    assert news[1] == {"withdrawn": False, "text": "Version 9 is published: reload the page to use it."}
    assert news[2] is None


def test_a_rollback_an_older_publisher_recorded_is_kept_when_the_channel_moves_on(tmp_path):
    """A pointer without the list (rolled_back_from only) lost its rollback at the next publish: the
    page's older rule (newer than the channel's) then matched nothing."""
    base, versions = str(tmp_path / "origin"), ["1", "2", "3", "4", "5", "6"]
    for v in versions[:5]:
        pub.publish(fake_tfjs_model(tmp_path / f"src{v}", int(v)), base, "bloodcell", v, client_metadata())
    (tmp_path / "origin" / "bloodcell" / "latest.json").write_text(json.dumps(
        {"version": "3", "model_url": "3/model.json", "metadata_url": "3/metadata.json", "pinned": True,
         "rolled_back_from": "5"}))
    assert withdrawn_of(versions, pub.read_pointer(base, "bloodcell")) == ["4", "5"]
    pub.unpin(base, "bloodcell")
    pub.publish(fake_tfjs_model(tmp_path / "src6", 6), base, "bloodcell", "6", client_metadata())
    assert withdrawn_of(versions, pub.read_pointer(base, "bloodcell")) == ["4", "5"]


def test_any_move_back_withdraws_what_it_stepped_over(tmp_path):
    base, versions = str(tmp_path / "origin"), ["1", "2", "3"]
    for v in versions:
        pub.publish(fake_tfjs_model(tmp_path / f"src{v}", int(v)), base, "bloodcell", v, client_metadata())
    pub.point_latest(base, "bloodcell", "1")
    assert withdrawn_of(versions, pub.read_pointer(base, "bloodcell")) == ["2", "3"]


def test_a_version_published_again_onto_the_channel_is_no_longer_withdrawn(tmp_path):
    """An unpinned move back sets no floor: publishing that version again moved the channel onto it with
    it still listed, and once a newer one came, browsers holding it were refused."""
    base, versions = str(tmp_path / "origin"), ["1", "2", "3", "4"]
    for v in versions[:2]:
        pub.publish(fake_tfjs_model(tmp_path / f"src{v}", int(v)), base, "bloodcell", v, client_metadata())
    pub.point_latest(base, "bloodcell", "1")
    pub.publish_or_resume(str(tmp_path / "src2"), base, "bloodcell", "2", client_metadata())
    pub.publish(fake_tfjs_model(tmp_path / "src3", 3), base, "bloodcell", "3", client_metadata())
    assert pub.read_pointer(base, "bloodcell")["version"] == "3"
    assert withdrawn_of(versions, pub.read_pointer(base, "bloodcell")) == []
