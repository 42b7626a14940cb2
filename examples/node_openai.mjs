// A plain openai-npm program, unaware of oisp-sensor:
//
//   oisp-sensor run -- node examples/node_openai.mjs
//
// Node's fetch ignores HTTPS_PROXY before Node 24; `oisp-sensor run` adds a small
// preload (NODE_OPTIONS) that routes fetch through the sensor, so nothing changes here.
// Needs `npm install openai` next to it and OPENAI_API_KEY for the real API.
import OpenAI from 'openai';

const client = new OpenAI();
const completion = await client.chat.completions.create({
  model: process.env.OPENAI_MODEL || 'gpt-4o-mini',
  messages: [{ role: 'user', content: 'Say hello in five words.' }],
});
console.log(completion.choices[0].message.content);
