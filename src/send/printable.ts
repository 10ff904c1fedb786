// Text a peer chose (a server's ERROR or GOAWAY message) must not drive our user's terminal: an
// ESC or CSI can recolour, retitle, move the cursor or fake a "verified" line, a newline can forge
// a second line, and bidirectional overrides reorder what is shown (Trojan Source). Every such
// character is shown as its escape instead, so the text is still readable and nothing is hidden.

// C0 controls (newline and ESC included), DEL, C1 controls (CSI is U+009B), line and paragraph
// separators, and the bidirectional embeddings, overrides and isolates.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;

export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => {
    const n = c.charCodeAt(0);
    return n < 0x100 ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u${n.toString(16).padStart(4, '0')}`;
  });
}
