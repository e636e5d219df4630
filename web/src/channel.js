// What the CDN's channel pointer (latest.json) says of the model version a browser holds. The rules are
// the publisher's (components/tfjs_publisher/publish.py): a publish never moves the channel back; a
// rollback does, and lists the versions it withdrew (those it stepped back over).

/**
 * Whether a rollback withdrew `version`. Such a model must not answer, even when the channel's version
 * cannot be loaded; the channel's own version never is.
 * @param {string} version
 * @param {{ version: string, rolled_back_from?: string | null, withdrawn?: string[] }} pointer
 * @returns {boolean}
 */
export function withdrawn(version, pointer) {
  if (String(version) === String(pointer.version)) return false;
  if (Array.isArray(pointer.withdrawn)) return pointer.withdrawn.map(String).includes(String(version));
  // A pointer of an older publisher: the versions newer than the channel's, up to the one rolled back from.
  const floor = String(pointer?.rolled_back_from ?? '');
  if (!/^[0-9]+$/.test(floor) || !/^[0-9]+$/.test(String(version)) || !/^[0-9]+$/.test(String(pointer.version))) {
    return false;
  }
  const v = BigInt(version);
  return v > BigInt(pointer.version) && v <= BigInt(floor);
}

/**
 * What a page that loaded `version` tells when it reads the channel again (a tab left open for days):
 * nothing when the channel still names it; else whether that version was withdrawn, and the line to show.
 * @param {string} version
 * @param {{ version: string, rolled_back_from?: string | null, withdrawn?: string[] }} pointer
 * @returns {{ withdrawn: boolean, text: string } | null}
 */
export function channelNews(version, pointer) {
  if (String(pointer.version) === String(version)) return null;
  if (withdrawn(version, pointer)) {
    return { withdrawn: true, text: `Version ${version} was withdrawn (the channel was rolled back to version `
      + `${pointer.version}): it no longer answers. Reload the page to load version ${pointer.version}.` };
  }
  return { withdrawn: false, text: `Version ${pointer.version} is published: reload the page to use it.` };
}
