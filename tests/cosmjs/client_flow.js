// A wallet's round trip through cosmjs against a CometBFT-mode inferchain node, over CometBFT
// RPC only: read the chain, send tokens with an "auto" fee, find the tx, and have bad txs
// refused. Prints one JSON object on stdout for tests/test_cosmjs.py to check.
//
// Usage: node client_flow.js '{"rpc": "http://127.0.0.1:26657", "sender_key": "<hex>",
//                             "recipient": "infer1…", "amount": 12345}'
"use strict";

const { DirectSecp256k1Wallet, decodeTxRaw, Registry } = require("@cosmjs/proto-signing");
const {
  GasPrice,
  QueryClient,
  SigningStargateClient,
  StargateClient,
  calculateFee,
  defaultRegistryTypes,
  setupAuthExtension,
  setupBankExtension,
} = require("@cosmjs/stargate");
const { connectComet } = require("@cosmjs/tendermint-rpc");
const { BinaryReader, BinaryWriter } = require("cosmjs-types/binary");
const { TxRaw } = require("cosmjs-types/cosmos/tx/v1beta1/tx");

const PREFIX = "infer";
const DENOM = "ninfer";
const SEND = "/cosmos.bank.v1beta1.MsgSend";

// The string fields of a protobuf message, by field number; other fields are skipped. The
// chain's own queries (inference.v1) have no cosmjs types, and these need only strings.
function stringFields(bytes) {
  const reader = new BinaryReader(bytes);
  const fields = {};
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    if ((tag & 7) === 2) {
      fields[tag >>> 3] = reader.string();
    } else {
      reader.skipType(tag & 7);
    }
  }
  return fields;
}

// The chain's minimum gas price, from the auth module's params through the chain's own
// query service (/inference.v1.Query/Params, module "auth") over abci_query.
async function minimumGasPrice(queryClient) {
  const request = new BinaryWriter().uint32(10).string("auth").finish();
  const { value } = await queryClient.queryAbci("/inference.v1.Query/Params", request);
  return JSON.parse(stringFields(value)[1]).min_gas_price;
}

function sendMsg(from, to, amount) {
  return { typeUrl: SEND, value: { fromAddress: from, toAddress: to,
                                   amount: [{ denom: DENOM, amount: String(amount) }] } };
}

async function balances(client, addresses) {
  const found = {};
  for (const address of addresses) {
    found[address] = (await client.getBalance(address, DENOM)).amount;
  }
  return found;
}

// A refused tx's error as the caller sees it: the message, and the code a broadcast carries.
async function refusal(attempt) {
  try {
    await attempt();
  } catch (error) {
    return { message: String(error.message), code: error.code ?? null,
             codespace: error.codespace ?? null };
  }
  return { message: "accepted", code: 0, codespace: null };
}

async function main() {
  const input = JSON.parse(process.argv[2]);
  const wallet = await DirectSecp256k1Wallet.fromKey(Buffer.from(input.sender_key, "hex"),
                                                     PREFIX);
  const [{ address: sender }] = await wallet.getAccounts();
  const { recipient, amount } = input;
  const stranger = (await DirectSecp256k1Wallet.fromKey(new Uint8Array(32).fill(7), PREFIX))
    .getAccounts();
  const out = {};

  const client = await StargateClient.connect(input.rpc);
  out.chain_id = await client.getChainId();
  out.height = await client.getHeight();
  const account = await client.getAccount(sender);
  out.sender_account = { address: account.address, number: account.accountNumber,
                         sequence: account.sequence };
  out.unknown_account = await client.getAccount((await stranger)[0].address);

  const comet = await connectComet(input.rpc);
  const queryClient = QueryClient.withExtensions(comet, setupAuthExtension, setupBankExtension);
  out.min_gas_price = await minimumGasPrice(queryClient);
  const status = stringFields((await queryClient.queryAbci("/inference.v1.Query/Status",
                                                           new Uint8Array())).value);
  out.status_chain_id = status[1];
  out.all_balances = (await queryClient.bank.allBalances(sender))
    .map((coin) => `${coin.amount}${coin.denom}`);

  const gasPrice = GasPrice.fromString(`${out.min_gas_price}${DENOM}`);
  const signing = await SigningStargateClient.connectWithSigner(
    input.rpc, wallet, { gasPrice, broadcastPollIntervalMs: 300 });
  const before = await balances(client, [sender, recipient]);
  out.balances_before = before;

  const msg = sendMsg(sender, recipient, amount);
  const memo = "sent by cosmjs";
  out.gas_estimate = await signing.simulate(sender, [msg], memo);
  const result = await signing.signAndBroadcast(sender, [msg], "auto", memo);
  out.delivered = { code: result.code, height: result.height, hash: result.transactionHash,
                    gas_used: Number(result.gasUsed), gas_wanted: Number(result.gasWanted),
                    event_types: [...new Set(result.events.map((e) => e.type))] };

  const found = await client.getTx(result.transactionHash);
  const decoded = decodeTxRaw(found.tx);
  const registry = new Registry(defaultRegistryTypes);
  const sent = registry.decode(decoded.body.messages[0]);
  out.looked_up = {
    hash: found.hash, height: found.height, code: found.code, memo: decoded.body.memo,
    type_url: decoded.body.messages[0].typeUrl, to_address: sent.toAddress,
    amount: sent.amount, gas_limit: Number(decoded.authInfo.fee.gasLimit),
    fee: decoded.authInfo.fee.amount, signer_sequence: Number(decoded.authInfo.signerInfos[0].sequence),
  };
  out.by_height = (await client.searchTx([{ key: "tx.height", value: result.height }]))
    .map((tx) => tx.hash);
  out.by_hash = (await client.searchTx(`tx.hash='${result.transactionHash}'`)).map((tx) => tx.hash);
  out.by_sender = (await client.searchTx([{ key: "message.sender", value: sender }]))
    .map((tx) => tx.hash);
  out.missing_tx = await client.getTx("00".repeat(32));
  out.balances_after = await balances(client, [sender, recipient]);

  // Bad txs: each must be refused with a clear error and change nothing.
  const spendable = BigInt(out.balances_after[sender]);
  const tooMuch = sendMsg(sender, recipient, (spendable + 1n).toString());
  out.auto_fee_overspend = await refusal(() => signing.signAndBroadcast(sender, [tooMuch], "auto"));
  const fee = calculateFee(200000, gasPrice);
  out.overspend = await refusal(() => signing.signAndBroadcast(sender, [tooMuch], fee));
  const current = await client.getAccount(sender);
  const offline = await SigningStargateClient.offline(wallet);
  const wrongChain = await offline.sign(sender, [msg], fee, "", {
    accountNumber: current.accountNumber, sequence: current.sequence, chainId: "not-inferchain" });
  out.wrong_chain = await refusal(() => client.broadcastTx(TxRaw.encode(wrongChain).finish()));
  const tampered = await signing.sign(sender, [msg], fee, "");
  tampered.signatures[0][5] ^= 1;
  out.bad_signature = await refusal(() => client.broadcastTx(TxRaw.encode(tampered).finish()));
  out.balances_final = await balances(client, [sender, recipient]);
  out.sequence_final = (await client.getAccount(sender)).sequence;

  client.disconnect();
  signing.disconnect();
  comet.disconnect();
  // Exit once written: cosmjs leaves the poll timer of a refused broadcast pending (a minute).
  process.stdout.write(JSON.stringify(out) + "\n", () => process.exit(0));
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
