// pnpm bench:testbed — how long the lab takes to come up with warm caches: control plane + 10 hosts + git server.
import { startTestbed } from "../src/testbed.js";

const hosts = Number(process.env.BENCH_HOSTS ?? 10);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const times: number[] = [];
for (let i = 0; i < rounds; i++) {
  const t0 = Date.now();
  const tb = await startTestbed({ hosts });
  times.push((Date.now() - t0) / 1000);
  await tb.stop();
}
times.sort((a, b) => a - b);
console.log(`testbed_hosts: ${hosts}`);
console.log(`testbed_up_seconds_median: ${times[Math.floor(times.length / 2)]?.toFixed(2)}`);
console.log(`testbed_up_seconds_max: ${times[times.length - 1]?.toFixed(2)}`);
