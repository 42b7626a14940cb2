// A plain openai-SDK program, unaware of oisp-sensor: prints what the SDK returned as JSON.
// Usage: node chat.mjs [stream|plain|tools|https]   (https: Node's https module, no SDK)
import https from 'node:https';
import OpenAI from 'openai';

const mode = process.argv[2] || 'plain';
const client = new OpenAI({ apiKey: process.env.OPENAI_API_KEY || 'sk-node-test-key', maxRetries: 0 });
const messages = [{ role: 'user', content: 'Say hello from Node.' }];
const out = { mode, chunks: [] };
if (mode === 'https') {
  const body = JSON.stringify({ model: 'gpt-4o-mini', messages });
  const completion = await new Promise((resolve, reject) => {
    const req = https.request('https://api.openai.com/v1/chat/completions', {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${process.env.OPENAI_API_KEY || 'sk-node-test-key'}`,
        'content-length': Buffer.byteLength(body),
      },
    }, (res) => {
      let data = '';
      res.on('data', (c) => { data += c; });
      res.on('end', () => resolve(JSON.parse(data)));
    });
    req.on('error', reject);
    req.end(body);
  });
  out.text = completion.choices[0].message.content;
  out.tool_calls = [];
  out.usage = completion.usage;
} else if (mode === 'stream') {
  const stream = await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  for await (const chunk of stream) {
    out.chunks.push(Date.now() * 1e6);
    const delta = chunk.choices[0]?.delta?.content;
    if (delta) text += delta;
    if (chunk.usage) out.usage = chunk.usage;
  }
  out.text = text;
} else {
  const tools = mode === 'tools'
    ? [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }]
    : undefined;
  const completion = await client.chat.completions.create({ model: 'gpt-4o-mini', messages, tools });
  out.text = completion.choices[0].message.content;
  out.tool_calls = completion.choices[0].message.tool_calls || [];
  out.usage = completion.usage;
}
process.stdout.write(JSON.stringify(out) + '\n');
