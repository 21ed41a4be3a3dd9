// Pure logic of the widget (no DOM): payload parsing, history merge, handoff state. Run: npm test
import assert from "node:assert/strict";
import { test } from "node:test";

import { Conversation, handoffState } from "../src/conversation.js";
import { fromBotPayload, fromHistoryEntry, labelPayloads, splitLikeRasa, visitorMessage } from "../src/messages.js";

const history = (entries) => entries.map(fromHistoryEntry).filter(Boolean).flatMap(splitLikeRasa);
// What the connector sends for agent and system turns: Rasa's text payload plus metadata.handoff.
const agentSays = (name, body, extra = {}) => ({
  text: `${name}: ${body}`,
  metadata: { handoff: { sender: "agent", agent: { name }, body, ...extra } },
});
const notice = (event, text) => ({ text, metadata: { handoff: { sender: "system", event } } });

test("bot, agent, system and handoff payloads", () => {
  const bot = fromBotPayload({ text: "Hi", quick_replies: [{ content_type: "text", title: "Agent", payload: "/talk_to_agent" }] });
  assert.equal(bot.sender, "bot");
  assert.deepEqual(bot.quickReplies, [{ title: "Agent", payload: "/talk_to_agent" }]);

  const agent = fromBotPayload(agentSays("Alex", "Hello", { message_sid: "IM1", timestamp: "2030-01-01T10:00:00Z" }));
  assert.equal(agent.sender, "agent");
  assert.equal(agent.text, "Hello");
  assert.equal(agent.agentName, "Alex");
  assert.equal(agent.id, "IM1");
  assert.equal(agent.timestamp, Date.parse("2030-01-01T10:00:00Z"));

  const connecting = fromBotPayload({ text: "Connecting...", metadata: { handoff: { sender: "system", event: "connecting", chat: { token: "t" } } } });
  assert.equal(connecting.sender, "system");
  assert.equal(connecting.event, "connecting");
  // Top-level extras are not ours to read: only metadata.handoff marks a handoff turn.
  assert.equal(fromBotPayload({ text: "Hi", sender: "agent" }).sender, "bot");
  assert.equal(fromBotPayload({ custom: { something: 1 } }), null);
});

const pick = ({ state, phase, agentName }) => ({ state, phase, agentName });

test("handoff state follows the messages", () => {
  const seq = [
    fromBotPayload(notice("connecting", "Connecting...")),
    fromBotPayload({ ...notice("agent_joined", "Alex joined"), metadata: { handoff: { sender: "system", event: "agent_joined", agent: { name: "Alex" } } } }),
    fromBotPayload(agentSays("Alex", "Hi")),
  ];
  assert.deepEqual(pick(handoffState(seq.slice(0, 1))), { state: "waiting", phase: "connecting", agentName: "" });
  assert.deepEqual(pick(handoffState(seq)), { state: "agent", phase: "agent", agentName: "Alex" });
  seq.push(fromBotPayload(notice("chat_closed", "ended")));
  assert.equal(handoffState(seq).state, "ended");
  seq.push(fromBotPayload(notice("bot_resumed", "back")));
  assert.equal(handoffState(seq).state, "bot");
});

test("history fills in missed messages without duplicating what is shown", () => {
  const conversation = new Conversation();
  const sent = visitorMessage("/talk_to_agent", "Talk to an agent");
  conversation.add(sent);
  conversation.markSent(sent);
  conversation.add(fromBotPayload({ text: "First." })); // Rasa sends paragraphs one by one
  conversation.add(fromBotPayload({ text: "Second." }));
  conversation.add(fromBotPayload(agentSays("Alex", "Hi", { message_sid: "IM1" })));
  const now = Date.now() / 1000;
  const added = conversation.mergeHistory(
    labelPayloads(
      history([
        { sender: "visitor", text: "/talk_to_agent", timestamp: now },
        { sender: "bot", text: "First.\n\nSecond.", timestamp: now },
        { sender: "agent", ...agentSays("Alex", "Hi", { message_sid: "IM1" }), timestamp: now },
        { sender: "agent", ...agentSays("Alex", "Missed", { message_sid: "IM2" }), timestamp: now },
      ]),
      {},
    ),
  );
  assert.deepEqual(added.map((m) => m.text), ["Missed"]);
  assert.deepEqual(conversation.visible.map((m) => m.text), ["Talk to an agent", "First.", "Second.", "Hi", "Missed"]);
  assert.equal(conversation.mergeHistory(history([{ sender: "agent", ...agentSays("Alex", "Missed", { message_sid: "IM2" }), timestamp: now }])).length, 0);
});

test("raw tracker events are understood", () => {
  const messages = history([
    { event: "action", name: "action_listen", timestamp: 1 },
    { event: "user", text: "/talk_to_agent", timestamp: 1 },
    { event: "bot", text: "Alex joined the chat.", timestamp: 2, metadata: { handoff: { role: "system", event: "agent_joined" } } },
    { event: "bot", text: "Hi", timestamp: 3, metadata: { handoff: { role: "agent", agent: "Alex", message_sid: "IM9" } } },
    { event: "bot", text: "Pick one", timestamp: 4, data: { buttons: [{ title: "A", payload: "/a" }] } },
  ]);
  assert.deepEqual(messages.map((m) => [m.sender, m.text]), [
    ["visitor", "/talk_to_agent"], ["system", "Alex joined the chat."], ["agent", "Hi"], ["bot", "Pick one"],
  ]);
  assert.equal(messages[1].event, "agent_joined");
  assert.equal(messages[2].id, "IM9");
  assert.equal(messages[3].quickReplies[0].payload, "/a");
  assert.equal(labelPayloads(messages, { "/talk_to_agent": "Talk to an agent" })[0].text, "Talk to an agent");
});
