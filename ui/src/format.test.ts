import { describe, expect, it } from "vitest";
import { formatCountdown, formatDuration, indentJson, shortHash } from "./format";

describe("indentJson", () => {
  it("indents canonical JSON without touching a literal", () => {
    const canonical = '{"a":[1,{"b":"x, y: {z}","c":[]}],"big":12345678901234567890,"e":{},"q":"say \\"hi\\", then {"}';
    expect(indentJson(canonical)).toBe(
      [
        "{",
        '  "a": [',
        "    1,",
        "    {",
        '      "b": "x, y: {z}",',
        '      "c": []',
        "    }",
        "  ],",
        '  "big": 12345678901234567890,',
        '  "e": {},',
        '  "q": "say \\"hi\\", then {"',
        "}",
      ].join("\n"),
    );
  });

  it("leaves scalars alone", () => {
    expect(indentJson('"text"')).toBe('"text"');
    expect(indentJson("42")).toBe("42");
  });
});

describe("formatCountdown", () => {
  it("goes from days to seconds", () => {
    expect(formatCountdown((2 * 86_400 + 3 * 3600 + 59) * 1000)).toBe("2 d 3 h");
    expect(formatCountdown((3600 + 5 * 60) * 1000)).toBe("1 h 05 min");
    expect(formatCountdown((4 * 60 + 5) * 1000)).toBe("4 min 05 s");
    expect(formatCountdown(41_200)).toBe("42 s");
    expect(formatCountdown(-5)).toBe("0 s");
  });
});

describe("shortHash", () => {
  it("keeps 12 characters", () => {
    expect(shortHash("0123456789abcdef")).toBe("0123456789ab…");
    expect(shortHash("abc")).toBe("abc");
  });
});

describe("formatDuration", () => {
  it("shows milliseconds under a second, then counts like the countdown", () => {
    expect(formatDuration(850)).toBe("850 ms");
    expect(formatDuration(185_000)).toBe("3 min 05 s");
    expect(formatDuration(3_900_000)).toBe("1 h 05 min");
  });
});
