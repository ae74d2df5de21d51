/**
 * C0 and C1 control characters, DEL, and the Unicode bidirectional overrides (which reorder what a
 * terminal shows). Any of them in a device-sent string could clear the screen, move the cursor,
 * recolour or rewrite the lines around it.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const UNSAFE_FOR_TERMINALS = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/**
 * The text as a terminal can show it safely: every control character (ESC included) becomes a
 * visible escape such as `\x1b` or `\n`, so a device-sent string is shown, never obeyed. For text
 * stored as sent and printed by the CLIs; JSON output needs none of this (JSON escapes them).
 */
export function visibleText(text: string): string {
  return text.replace(UNSAFE_FOR_TERMINALS, (c) => {
    const named = NAMED[c];
    if (named) return named;
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}
