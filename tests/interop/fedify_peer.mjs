// A minimal Fedify peer for the interop test (tests/test_interop_fedify.py).
//
// It serves one actor ("peer") on 127.0.0.1:PORT, sends a signed Follow to TARGET (a
// Praxisnetz actor URL) and reports on stdout, one JSON object per line, what its inbox
// receives. Fedify verifies HTTP signatures itself: a listener only runs for verified
// activities; anything else is reported as "unverified".
//
// Usage: node fedify_peer.mjs PORT TARGET_ACTOR_URL [CONTEXTS_JSON]
// CONTEXTS_JSON maps JSON-LD context URLs to their documents: the contexts Praxisnetz
// bundles (its own is not published yet, and tests have no internet).

// Node 20 has no navigator; Fedify reads navigator.userAgent at import time.
globalThis.navigator ??= { userAgent: "praxisnetz-interop" };

import http from "node:http";
import { readFile } from "node:fs/promises";

const { createFederation, MemoryKvStore, generateCryptoKeyPair } = await import("@fedify/fedify");
const vocab = await import("@fedify/vocab");

const [port, target, contextsFile] = process.argv.slice(2);
const origin = `http://127.0.0.1:${port}`;

function report(event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + "\n");
}

// Contexts Praxisnetz bundles are read from the file, never fetched.
async function loadContexts() {
  if (!contextsFile) return {};
  return JSON.parse(await readFile(contextsFile, "utf8"));
}
const bundledContexts = await loadContexts();

const rsaPair = await generateCryptoKeyPair("RSASSA-PKCS1-v1_5");
const edPair = await generateCryptoKeyPair("Ed25519");

const federation = createFederation({
  kv: new MemoryKvStore(),
  origin,
  allowPrivateAddress: true, // loopback peers only; this script never runs outside tests
});

// Fedify refuses a custom loader together with allowPrivateAddress, so wrap the built-in
// context loader after construction: bundled contexts from the file, the rest as before.
const builtinContextLoaderFactory = federation.contextLoaderFactory;
federation.contextLoaderFactory = (options) => {
  const fallback = builtinContextLoaderFactory(options);
  return async (url, opts) => {
    if (Object.hasOwn(bundledContexts, url)) {
      return { contextUrl: null, documentUrl: url, document: bundledContexts[url] };
    }
    return fallback(url, opts);
  };
};

federation
  .setActorDispatcher("/users/{identifier}", async (ctx, identifier) => {
    if (identifier !== "peer") return null;
    const keys = await ctx.getActorKeyPairs(identifier);
    return new vocab.Person({
      id: ctx.getActorUri(identifier),
      preferredUsername: identifier,
      name: "Fedify interop peer",
      inbox: ctx.getInboxUri(identifier),
      endpoints: new vocab.Endpoints({ sharedInbox: ctx.getInboxUri() }),
      publicKey: keys[0].cryptographicKey,
      assertionMethods: keys.map((key) => key.multikey),
    });
  })
  .setKeyPairsDispatcher(async (_ctx, identifier) =>
    identifier === "peer" ? [rsaPair, edPair] : [],
  );

federation
  .setInboxListeners("/users/{identifier}/inbox", "/inbox")
  .on(vocab.Accept, async (_ctx, accept) => {
    report("accept", { id: accept.id?.href, actor: accept.actorId?.href });
  })
  .on(vocab.Reject, async (_ctx, reject) => {
    report("reject", { id: reject.id?.href, actor: reject.actorId?.href });
  })
  .on(vocab.Create, async (_ctx, create) => {
    const object = await create.getObject();
    report("create", {
      id: create.id?.href,
      actor: create.actorId?.href,
      object: object?.id?.href,
      name: object?.name?.toString() ?? null,
    });
  })
  .on(vocab.Activity, async (_ctx, activity) => {
    report("activity", { id: activity.id?.href, type: activity.constructor.name });
  })
  .onUnverifiedActivity(async (_ctx, activity, reason) => {
    report("unverified", { id: activity.id?.href, reason: reason?.type ?? String(reason) });
  })
  .onError(async (_ctx, error) => {
    report("inbox_error", { message: String(error?.message ?? error) });
  });

// Node 20 http server → Fetch API request → Fedify → response.
async function toFetchRequest(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const body = chunks.length ? Buffer.concat(chunks) : undefined;
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    headers.set(name, Array.isArray(value) ? value.join(", ") : value);
  }
  const method = req.method ?? "GET";
  return new Request(new URL(req.url, origin), {
    method,
    headers,
    body: method === "GET" || method === "HEAD" ? undefined : body,
  });
}

const server = http.createServer(async (req, res) => {
  try {
    const request = await toFetchRequest(req);
    const response = await federation.fetch(request, { contextData: undefined });
    res.writeHead(response.status, Object.fromEntries(response.headers.entries()));
    res.end(Buffer.from(await response.arrayBuffer()));
  } catch (error) {
    report("server_error", { message: String(error?.message ?? error) });
    res.writeHead(500);
    res.end();
  }
});

server.listen(Number(port), "127.0.0.1", async () => {
  report("ready", { actor: `${origin}/users/peer` });
  try {
    const ctx = federation.createContext(new URL(origin), undefined);
    const remote = await ctx.lookupObject(target);
    if (!remote || !remote.id || !remote.inboxId) {
      report("follow_failed", { reason: "target actor not found" });
      return;
    }
    const follow = new vocab.Follow({
      id: new URL(`${origin}/follows/${crypto.randomUUID()}`),
      actor: ctx.getActorUri("peer"),
      object: remote.id,
    });
    await ctx.sendActivity({ identifier: "peer" }, remote, follow);
    report("follow_sent", { id: follow.id.href, target: remote.id.href });
  } catch (error) {
    report("follow_failed", { reason: String(error?.message ?? error) });
  }
});

process.on("SIGTERM", () => server.close(() => process.exit(0)));
