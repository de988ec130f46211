// The npm client toxiproxy-node-client (written for the real Go Toxiproxy) against a server at
// process.argv[2]; the echo upstream is process.argv[3]. Prints one JSON object of observations.
const net = require("net");
const { Toxiproxy } = require(process.env.TOXIPROXY_NODE_CLIENT || "toxiproxy-node-client");

function echoRoundTrip(port) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const sock = net.connect(port, "127.0.0.1", () => sock.write("ping"));
    sock.setTimeout(5000, () => reject(new Error("echo timed out")));
    sock.once("data", (data) => {
      sock.destroy();
      resolve({ echoed: data.toString(), ms: Number(process.hrtime.bigint() - t0) / 1e6 });
    });
    sock.once("error", reject);
  });
}

async function main() {
  const [api, upstream] = process.argv.slice(2);
  const tp = new Toxiproxy(api);
  const out = { version: await tp.getVersion() };
  await tp.reset();
  const proxy = await tp.createProxy({ name: "node_echo", listen: "127.0.0.1:0", upstream });
  const port = Number(proxy.listen.split(":").pop());
  out.created = proxy.toJson();
  out.direct = await echoRoundTrip(port);
  const toxic = await proxy.addToxic({ name: "slow", type: "latency", stream: "downstream", toxicity: 1,
                                      attributes: { latency: 200, jitter: 0 } });
  out.toxic = toxic.toJson ? toxic.toJson() : { name: toxic.name, type: toxic.type, attributes: toxic.attributes };
  out.delayed = await echoRoundTrip(port);
  const updated = await toxic.update({ attributes: { latency: 50 }, toxicity: 1 });
  out.updated = updated.attributes;
  out.fetched = (await proxy.getToxic("slow")).attributes;
  await toxic.remove();
  out.after_remove = await echoRoundTrip(port);
  const disabled = await proxy.update({ enabled: false, listen: proxy.listen, upstream });
  out.disabled = disabled.enabled;
  out.refused = await echoRoundTrip(port).then(() => false, () => true);
  await proxy.update({ enabled: true, listen: proxy.listen, upstream });
  const populated = await tp.populate([{ name: "node_pop", listen: "127.0.0.1:0", upstream }]);
  out.populated = Object.keys(populated);
  out.all = Object.keys(await tp.getAll()).sort();
  try {
    await tp.get("no_such_proxy");
    out.missing = "found?!";
  } catch (err) {
    out.missing = String(err.message || err);
  }
  await (await tp.get("node_pop")).remove();
  await proxy.remove();
  out.left = Object.keys(await tp.getAll());
  console.log(JSON.stringify(out));
}

main().catch((err) => { console.error(String(err && err.stack || err)); process.exit(1); });
