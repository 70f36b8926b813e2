"""The explorer in a real browser (Debian's Chromium through playwright) against a real
network: a solo chain, two participants sharing one ML node, real inferences through the
openai client and a proposal submitted with ``python -m chain gov``.

It shows the height advancing without a reload, an inference found by its id with its
executor, cost, status, verdict and decoded artifact (every output token with its top-k),
participants with their weights, a settled epoch, the inference once its epoch is settled
(the chain keeps only its summary; the page shows it as it was from the node's history) and
the proposal with its tally; that text
from the chain (a model output with a <script> element, a stop sequence, a proposal title)
is shown as text and never runs; that an unknown id is a 404 page; and that a chain node
that is down is shown, not crashed on.
"""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from chain_nodes import ROOT, ChainNode, funded_keys, template
from conftest import free_port
from explorer_browser import api_status, chromium, explorer_process
from local_network import MODEL, LocalNetwork, MlNodes, poll

from chain.inference.artifact import decode
from genesis.solo import layout_solo
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.inference_pb2 import VALIDATED

# The screenshot in docs/ is refreshed only on request, so a test run leaves the checkout clean.
SCREENSHOT = ROOT / "docs" / "explorer.png"
REFRESH_SCREENSHOT = os.environ.get("INFERCHAIN_REFRESH_SCREENSHOT") == "1"
# Short epochs, so epoch 0 settles (its claim window closed) within the test; proof of
# compute stays off (LocalNetwork's default), so the genesis weights hold.
PARAMS = {"epochs": {"epoch_length_blocks": 60},
          # Three checks per newcomer inference: the heaviest of the three other members
          # checks every one, so the inference shown is always checked.
          "validation": {"validation_window_blocks": 20, "voting_period_blocks": 10,
                         "opening_blocks": 20, "reveal_window_blocks": 70,
                         "canary_rate_ppm": 0,
                         "max_expected_checks_ppm": 3_000_000},
          "gov": {"min_deposit": 1_000, "min_initial_deposit": 1_000,
                  "voting_period_blocks": 400}}
# Anyone's text that reaches the chain: the model's output (greedy, this prompt makes the
# default model write a <script> element calling alert), the developer's stop sequence, a
# proposer's title.
HTML_PROMPT = "Write a minimal HTML page with a <script> tag that calls alert."
HOSTILE_STOP = "</code><script>window.pwned = 1</script>"
HOSTILE_TITLE = "<script>window.pwned = 2</script><img src=x onerror=\"window.pwned = 3\">"
WAIT_MS = 120_000


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalNetwork, int]]:
    root = tmp_path_factory.mktemp("explorer-net")
    mlnodes = MlNodes(root, 1)
    try:
        net = LocalNetwork(root / "net", mlnodes.ports * 2, params=PARAMS)
        try:
            yield net, mlnodes.ports[0]
        finally:
            net.close()
    finally:
        mlnodes.close()


def submit_proposal(net: LocalNetwork, path: Path) -> int:
    path.write_text(json.dumps({
        "title": HOSTILE_TITLE, "summary": "make expiry a little longer", "deposit": 1_000,
        "messages": [{"@type": "/inference.v1.ParamChange", "module": "inference",
                      "param": "expiration_blocks", "value": 2100}]}))
    done = subprocess.run([sys.executable, "-m", "chain", "gov", "--grpc",
                           f"127.0.0.1:{net.chain.grpc_port}", "submit", str(path),
                           "--key", net.developer.private_key_hex],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return int(json.loads(done.stdout)["events"]["submit_proposal"]["proposal_id"])


def test_the_explorer_shows_the_network_live(network, tmp_path):
    net, mlnode_port = network
    reply = net.client(net.nodes[0]).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": HTML_PROMPT}], max_tokens=24,
        temperature=0, seed=7, stop=[HOSTILE_STOP])
    inference_id = reply.model_extra["inference_id"]
    output = reply.choices[0].message.content
    assert "<script>" in output  # the model's greedy answer: markup the page must not run
    proposal_id = submit_proposal(net, tmp_path / "proposal.json")
    inference = net.finished(inference_id)
    k, steps = decode(inference.artifact)

    with explorer_process(tmp_path / "explorer.log", f"127.0.0.1:{net.chain.grpc_port}",
                          f"127.0.0.1:{mlnode_port}") as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        dialogs = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(url)
        assert page.locator("#head-chain").inner_text() == "inferchain-test"
        first = int(page.locator("#head-height").inner_text())
        page.wait_for_function(
            f"Number(document.getElementById('head-height').textContent) > {first}",
            timeout=WAIT_MS)
        assert "chain node up" in page.locator("#head-state").inner_text()

        # Found by its id through the search box.
        page.fill("#search", inference_id)
        page.press("#search", "Enter")
        page.wait_for_url(f"**/inferences/{inference_id}")
        assert page.locator("#inference-id").inner_text() == inference_id
        assert page.locator("#inference-executor").inner_text() == inference.executor
        assert page.locator("#inference-cost").inner_text().startswith(f"{inference.cost} ninfer")
        assert inference.cost > 0
        assert page.locator("#inference-agent-fee").inner_text() == (
            f"{inference.agent_fee} ninfer to the start's sender {inference.starter}")
        # The other participant re-scores it (reputation 0: always checked); the verdict and
        # the VALIDATED status appear without a reload.
        page.wait_for_selector("#verdicts td.good", timeout=WAIT_MS)
        page.wait_for_function(
            "document.getElementById('inference-status').textContent === 'VALIDATED'",
            timeout=WAIT_MS)
        assert net.inference(inference_id).status == VALIDATED
        # Both members serve the model and sealed, so the window's reports opened early.
        task = net.query("ValidationTask", q.QueryValidationTaskRequest(
            inference_id=inference_id), q.QueryValidationTaskResponse).task
        assert task.window_sealed_height > 0
        page.reload()
        assert (f"every member serving the model sealed by height {task.window_sealed_height}, "
                f"so its reports open from {task.window_sealed_height + 1}") in \
            page.locator("#validation-state").inner_text()
        rows = page.locator("#artifact > tbody > tr:has(td)")
        assert rows.count() == len(steps) == inference.output_tokens
        for i, step in enumerate(steps):
            alternatives = rows.nth(i).locator("table.top-k tr")
            assert alternatives.count() == len(step.top_ids) == k
            ids = [int(alternatives.nth(j).locator("td").first.inner_text())
                   for j in range(alternatives.count())]
            assert ids == list(step.top_ids)
            assert rows.nth(i).locator(".token").first.inner_text() != ""
        # Output text from the ML node's tokenizer, and the stop sequence as plain text.
        assert page.locator("#inference-output").inner_text().strip() == output.strip()
        assert page.locator("#inference-stop code").inner_text() == HOSTILE_STOP
        assert page.evaluate("window.pwned") is None and dialogs == []
        assert page.locator("main script").count() == 0
        shot = page.screenshot(path=str(SCREENSHOT) if REFRESH_SCREENSHOT else None)
        assert shot.startswith(b"\x89PNG")

        page.goto(f"{url}/participants")
        table = page.locator("#participants")
        for node in net.nodes:
            row = table.locator("tr", has_text=node.address)
            weight = row.locator("td").nth(2).inner_text()
            assert int(weight) == net.participant(node.address).weight > 0
            assert row.locator("td").nth(1).inner_text() == "active"

        page.goto(f"{url}/epochs")
        page.wait_for_selector('#epochs a[href="/epochs/0"]', timeout=WAIT_MS)
        page.click('#epochs a[href="/epochs/0"]')
        settlement = net.query("EpochSettlement", q.QueryEpochSettlementRequest(epoch=0),
                               q.QueryEpochSettlementResponse).settlement
        assert page.locator("#rewards-0 tr:has(td)").count() == len(settlement.rewards) > 0

        # Once its epoch is settled the chain keeps only the inference's summary: the page
        # says so and shows it as it stood in the block before, from the node's history.
        summarized = poll(lambda: net.inference(inference_id).summarized_height or None,
                          "the inference cut to its summary", 180, 1.0)
        page.goto(f"{url}/inferences/{inference_id}")
        assert f"since height {summarized}" in \
            page.locator("#inference-summarized").inner_text()
        assert page.locator("#artifact > tbody > tr:has(td)").count() == len(steps)
        assert page.locator("#verdicts td.good").count() > 0

        page.goto(f"{url}/proposals")
        title = page.locator("#proposals td.proposal-title")
        assert title.inner_text() == HOSTILE_TITLE
        page.click(f'#proposals a[href="/proposals/{proposal_id}"]')
        assert page.locator("#proposal .proposal-title").inner_text() == HOSTILE_TITLE
        tally = net.query("ProposalTally", q.QueryProposalTallyRequest(proposal_id=proposal_id),
                          q.QueryProposalTallyResponse).tally
        assert f"of {tally.total_power}" in page.locator("#tally").inner_text()
        assert page.locator("main img").count() == 0
        assert page.evaluate("window.pwned") is None and dialogs == []

        missing = page.goto(f"{url}/inferences/no-such-inference")
        assert missing.status == 404
        assert page.locator("h1").inner_text() == "Not found"
        assert "no-such-inference" in page.locator("#error-message").inner_text()
        assert page.goto(f"{url}/proposals/99999").status == 404
        assert page.goto(f"{url}/epochs/99999").status == 404
        assert page.locator("#error-message").inner_text() == \
            "nothing to show for epoch 99999: epoch 99999 is not settled yet"
        assert page.goto(f"{url}/participants/not-an-address").status == 404


def test_a_chain_node_that_is_down_is_shown_and_followed_once_it_is_up(tmp_path):
    port = free_port()
    with explorer_process(tmp_path / "explorer.log", f"127.0.0.1:{port}") as url, \
            chromium() as browser:
        page = browser.new_page()
        answer = page.goto(url)
        assert answer.status == 503
        assert page.locator("h1").inner_text() == "Chain node unreachable"
        assert "chain node unreachable" in page.locator("#head-state").inner_text()
        assert api_status(url)["up"] is False

        info = layout_solo(template(funded_keys(1)), tmp_path / "chain", grpc_port=port,
                           block_interval_ms=300)
        chain = ChainNode(info.home, port).start()
        try:
            chain.wait_height(2)
            page.wait_for_function(
                "document.getElementById('head-state').textContent === 'chain node up'",
                timeout=WAIT_MS)
            page.wait_for_function(
                "Number(document.getElementById('head-height').textContent) >= 2",
                timeout=WAIT_MS)
            assert page.goto(url).status == 200
            chain.kill()
            page.wait_for_function(
                "document.getElementById('head-state').textContent"
                ".startsWith('chain node unreachable')", timeout=WAIT_MS)
            assert page.goto(f"{url}/participants").status == 503
            poll(lambda: api_status(url) if api_status(url)["up"] is False else None,
                 "the status endpoint to say the node is down", timeout=30)
        finally:
            chain.close()
