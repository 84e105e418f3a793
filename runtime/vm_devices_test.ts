import assert from "node:assert/strict";
import { Vm } from "./vm.ts";
import { hostProcess } from "./harness/host_processes.ts";

const ring3Host = Deno.build.os === "linux" && Deno.build.arch === "x86_64";
const MINIOS = "fixtures/build/minios.elf";

Deno.test({
  name: "COM2 backed by the scenario: vm.serial(2) expects and sends like the console",
  ignore: !ring3Host,
  async fn() {
    const vm = await Vm.start({ kernel: MINIOS, cmdline: "com2", serial: { com2: "console" } });
    try {
      assert.equal(vm.serial(1), vm.console);
      assert.throws(() => vm.serial(3), /COM3 is not connected/);
      await vm.serial(2).expect("minios$ ", { timeout: "5s" });
      vm.serial(2).send("fw\r");
      await vm.serial(2).expect("fw: checksums ok\n", { timeout: "5s" });
      await vm.console.expect("fw: checksums ok\n", { timeout: "1s" });
      vm.serial(2).send("exit 0\r");
      assert.equal(await vm.exit(), 1);
    } finally {
      await vm.stop();
      assert.equal(hostProcess(vm.pid), null);
    }
  },
});

Deno.test({
  name: "keyboard input is refused in the scenario when the keymap has no key for it",
  ignore: !ring3Host,
  async fn() {
    const vm = await Vm.start({ kernel: MINIOS });
    try {
      assert.throws(() => vm.keyboard.type("café"), /no key types "é"/);
      assert.throws(() => vm.keyboard.press("Super+x"), /unknown key "Super"/);
      await vm.console.expect("minios$ ", { timeout: "5s" });
      vm.keyboard.type("exit 5\n", { interval: "1ms" });
      assert.equal(await vm.exit(), 11);
    } finally {
      await vm.stop();
    }
  },
});

Deno.test({
  name: "the screen's expect times out in guest time with the screen's text in the error",
  ignore: !ring3Host,
  async fn() {
    const vm = await Vm.start({ kernel: MINIOS });
    try {
      await vm.console.expect("minios$ ", { timeout: "5s" });
      await assert.rejects(
        vm.screen.expect("never shown", { timeout: "200ms" }),
        /did not show never shown in time; it shows:\nminios: protected mode/,
      );
    } finally {
      await vm.stop();
    }
  },
});
