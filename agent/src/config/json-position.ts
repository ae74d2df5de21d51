/**
 * Where a JSON text first goes wrong, as line and column (1-based) and what was expected there.
 * JSON.parse gives a byte offset at best, and for some mistakes none; a person editing a config
 * file in an editor needs the line. Called only after JSON.parse failed.
 */
export function jsonSyntaxError(text: string): { line: number; column: number; message: string } {
  let i = 0;
  const fail = (expected: string): never => {
    const found = i >= text.length ? "the end of the file" : JSON.stringify(text[i]);
    throw new SyntaxAt(i, `expected ${expected}, found ${found}`);
  };
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i] as string)) i++;
  };
  const literal = (word: string) => {
    if (text.startsWith(word, i)) i += word.length;
    else fail("a value");
  };
  const string = () => {
    i++; // the opening quote
    while (i < text.length && text[i] !== '"') {
      const c = text.charCodeAt(i);
      if (c < 0x20) fail("a closing quote (a string cannot span lines)");
      if (text[i] === "\\") {
        i++;
        if (text[i] === "u" && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) i += 4;
        else if (!'"\\/bfnrt'.includes(text[i] ?? "x")) fail('an escape such as \\n, \\" or \\u00e9');
      }
      i++;
    }
    if (i >= text.length) fail("a closing quote");
    i++;
  };
  const number = () => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
    if (!m) fail("a value");
    i += (m as RegExpExecArray)[0].length;
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === "{") object();
    else if (c === "[") array();
    else if (c === '"') string();
    else if (c === "t") literal("true");
    else if (c === "f") literal("false");
    else if (c === "n") literal("null");
    else if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) number();
    else fail("a value");
  };
  // Objects and arrays alike: items separated by commas up to the closing bracket.
  const items = (close: string, item: () => void, after: string) => {
    i++;
    ws();
    if (text[i] === close) return void i++;
    for (;;) {
      item();
      ws();
      if (text[i] === ",") i++;
      else if (text[i] === close) return void i++;
      else fail(`',' or '${close}' after ${after}`);
    }
  };
  const member = () => {
    ws();
    if (text[i] !== '"') fail("a property name in double quotes");
    string();
    ws();
    if (text[i] !== ":") fail("':' after the property name");
    i++;
    value();
  };
  const object = () => items("}", member, "the property value");
  const array = () => items("]", value, "the list item");
  try {
    if (text.charCodeAt(0) === 0xfeff) i++; // a byte order mark, as some editors write
    value();
    ws();
    if (i < text.length) fail("the end of the file after the value");
    return { ...lineAndColumn(text, i), message: "invalid JSON" };
  } catch (err) {
    if (!(err instanceof SyntaxAt)) throw err;
    return { ...lineAndColumn(text, err.offset), message: err.message };
  }
}

class SyntaxAt extends Error {
  constructor(
    readonly offset: number,
    message: string,
  ) {
    super(message);
  }
}

function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  return { line, column: offset - before.lastIndexOf("\n") };
}
