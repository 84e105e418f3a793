import assert from "node:assert/strict";
import { sha256Hex } from "./_sha256.ts";
import { seededRandom } from "../boot/_test_images.ts";

async function reference(data: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data as BufferSource));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("sha256Hex() gives the FIPS 180-4 test vectors", () => {
  const text = (s: string) => new TextEncoder().encode(s);
  assert.equal(
    sha256Hex(text("")),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
  assert.equal(
    sha256Hex(text("abc")),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  assert.equal(
    sha256Hex(text("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
  );
});

Deno.test("sha256Hex() agrees with WebCrypto at every length around the block boundaries", async () => {
  const random = seededRandom(7);
  for (const length of [1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 4099]) {
    const data = Uint8Array.from({ length }, () => Math.floor(random() * 256));
    assert.equal(sha256Hex(data), await reference(data), `length ${length}`);
  }
});
