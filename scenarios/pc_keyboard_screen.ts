import assert from "node:assert/strict";
import { scenario } from "../mod.ts";

export default scenario(
  "keystrokes typed on the PS/2 keyboard reach minios's shell, and its VGA text screen shows them",
  async ({ boot }) => {
    const vm = await boot({ kernel: "fixtures/build/minios.elf", memory: "64M" });
    await vm.console.expect("minios$ ", { timeout: "5s" });
    await vm.screen.expect(/^minios\$$/m, { timeout: "2s" });
    // Upper case and symbols go through Shift; the shell echoes on COM1 and on the screen.
    vm.keyboard.type("run HELLO!\n");
    await vm.console.expect("run: no program HELLO! or no free slot\n", { timeout: "5s" });
    vm.keyboard.type("run hello\n");
    await vm.console.expect(/\[pid \d+ hello\] exit 0\n/, { timeout: "5s" });
    const screen = (await vm.screen.expect(
      /run: no program HELLO![^\n]*\nminios\$ run hello\n(.*\n)*\[pid \d+ hello\] exit 0$/m,
      {
        timeout: "2s",
      },
    ))[0];
    assert.match(screen, /hello from pid \d+/);
    assert.match(vm.screen.text(), /^minios\$ run HELLO!$/m);
    // minios moves the hardware cursor when its shell waits for input: just after the prompt,
    // where "hello" then printed.
    const cursor = vm.screen.cursor();
    assert.ok(cursor !== null, "a visible cursor");
    assert.match(vm.screen.text().split("\n")[cursor.row], /^minios\$ /);
    assert.equal(cursor.column, "minios$ ".length);
    const png = vm.screen.png();
    assert.ok(png !== null && png.length > 1000, "a PNG of the screen");
    vm.keyboard.type("exit 0\n");
    assert.equal(await vm.exit(), 1);
  },
);
