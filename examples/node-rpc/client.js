#!/usr/bin/env node
// Call a burrowmq RPC procedure from Node.js with amqplib, following the wire protocol
// (docs/reference/rpc-protocol.md).
//
//   node client.js pricing.quote '{"sku": "tea", "quantity": 3}'
//
// The broker URL comes from $BURROWMQ_URL (default amqp://guest:guest@localhost:5672/).
// Prints the result as JSON and exits 0; a remote error prints the error envelope as
// JSON and exits 1; no server for the service, or a timeout, exits 2.
'use strict';

const crypto = require('node:crypto');
const amqp = require('amqplib');

const RPC_EXCHANGE = 'burrowmq.rpc';
const DIRECT_REPLY_TO = 'amq.rabbitmq.reply-to';
const REPLY_TYPE = 'burrowmq.rpc.reply';
const ERROR_TYPE = 'burrowmq.rpc.error';

class RemoteError extends Error {
  constructor(envelope) {
    super(`${envelope.type}: ${envelope.message}`);
    this.envelope = envelope; // {type, module, message, details, traceback}
  }
}

class NoRoute extends Error {}

// The body of a reply, decoded by its content_type (it follows the handler's return
// annotation: JSON for models and plain data, text for str, raw bytes otherwise).
function decodeBody(message) {
  const contentType = message.properties.contentType || 'application/json';
  if (contentType === 'application/json') return JSON.parse(message.content.toString('utf8'));
  if (contentType.startsWith('text/')) return message.content.toString('utf8');
  return message.content; // application/octet-stream: a Buffer
}

// Open a channel that can make many calls at once, matched to replies by correlation id.
async function rpcClient(url) {
  const connection = await amqp.connect(url);
  const channel = await connection.createChannel();
  const pending = new Map();

  // Direct reply-to: consume the pseudo-queue (no-ack) before publishing requests on
  // the same channel.
  await channel.consume(
    DIRECT_REPLY_TO,
    (message) => {
      const call = message && pending.get(message.properties.correlationId);
      if (!call) return; // a late reply to a call that gave up
      pending.delete(message.properties.correlationId);
      clearTimeout(call.timer);
      if (message.properties.type === ERROR_TYPE) call.reject(new RemoteError(decodeBody(message)));
      else if (message.properties.type === REPLY_TYPE) call.resolve(decodeBody(message));
      else call.reject(new Error(`unexpected reply type ${message.properties.type}`));
    },
    { noAck: true },
  );

  // Requests are mandatory: when no queue serves the service the broker returns them.
  channel.on('return', (message) => {
    const call = pending.get(message.properties.correlationId);
    if (!call) return;
    pending.delete(message.properties.correlationId);
    clearTimeout(call.timer);
    call.reject(new NoRoute(`no server for ${message.fields.routingKey}`));
  });

  // A channel error (no burrowmq.rpc exchange: no service ever ran in this vhost) fails
  // every call in flight instead of crashing the process.
  const failAll = (error) => {
    for (const [id, call] of pending) {
      pending.delete(id);
      clearTimeout(call.timer);
      call.reject(error);
    }
  };
  channel.on('error', (error) => failAll(error));
  channel.on('close', () => failAll(new Error('the channel was closed')));
  connection.on('error', (error) => failAll(error));

  function call(procedure, payload, { timeoutMs = 30000 } = {}) {
    const correlationId = crypto.randomUUID();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(correlationId);
        reject(new Error(`${procedure}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      pending.set(correlationId, { resolve, reject, timer });
      channel.publish(RPC_EXCHANGE, procedure, Buffer.from(JSON.stringify(payload)), {
        contentType: 'application/json',
        correlationId,
        messageId: correlationId,
        replyTo: DIRECT_REPLY_TO,
        expiration: String(timeoutMs), // the server skips requests whose caller gave up
        headers: { 'x-rpc-deadline': Date.now() + timeoutMs },
        deliveryMode: 1,
        mandatory: true,
      });
    });
  }

  return { call, close: () => connection.close().catch(() => {}) };
}

async function main() {
  const [procedure, body = 'null'] = process.argv.slice(2);
  if (!procedure) {
    console.error('usage: node client.js SERVICE.METHOD [JSON]');
    return 2;
  }
  const url = process.env.BURROWMQ_URL || 'amqp://guest:guest@localhost:5672/';
  const client = await rpcClient(url);
  try {
    const result = await client.call(procedure, JSON.parse(body), { timeoutMs: 10000 });
    console.log(JSON.stringify({ result }));
    return 0;
  } catch (error) {
    if (error instanceof RemoteError) {
      console.log(JSON.stringify({ error: error.envelope }));
      return 1;
    }
    console.error(`client: ${error.message}`);
    return 2;
  } finally {
    await client.close();
  }
}

if (require.main === module) {
  main().then((code) => {
    process.exitCode = code;
  });
}

module.exports = { rpcClient, RemoteError, NoRoute };
