"""The nurse workflow on real parts: simulated beds over LSL -> bridge -> Tansu -> worker (SleepLM runtime,
alert agent) -> SQLite <- API. A bed's threshold set through the API raises an alert within seconds, a
nurse's acknowledgement through the API is adopted by the worker, and a watch rule is calibrated by
the worker and raises advisories."""

from __future__ import annotations

import httpx

from store import Store
from tests.live.conftest import wait_until
from tests.live.helpers import start_beds


def test_threshold_alert_acknowledgement_and_watch_rule_through_the_stack(stack) -> None:
    settings = stack.settings
    with Store(settings.database_url) as store:
        admin = store.create_token("charge-nurse", "admin")[0]
        nurse = store.create_token("nurse-ann", "nurse")[0]
    env = stack.child_env()
    stack.spawn("api", ["api"], env)
    stack.spawn("worker", ["worker"], env)
    with httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {admin}"}, timeout=10) as api:
        wait_until(lambda: _up(api), 60, "the API", stack)
        # a bed whose SpO2 target is above anything it will read: desaturation after 15 s of device time
        assert api.put("/api/beds/bed-01/thresholds", json={"spo2_low": 99.9}).status_code == 200
        rule = api.post("/api/rules", json={"text": "wake", "min_duration_s": 30}).json()
        start_beds(stack, beds=2, speed=10, hours=0.1)

        def desaturation() -> dict | None:
            found = [a for a in api.get("/api/alerts", params={"bed": "bed-01"}).json() if a["type"] == "desaturation"]
            return found[0] if found else None

        wait_until(lambda: desaturation() is not None, 150, "a desaturation alert on bed-01", stack)
        alert = desaturation()
        assert alert["priority"] == "medium" and alert["evidence"]["values"]["min_spo2"] < 99.9
        assert not [
            a
            for a in api.get("/api/alerts", params={"bed": "bed-02"}).json()
            if a["type"] == "desaturation" and a["evidence"]["values"]["min_spo2"] >= 88.0
        ], "bed-02 keeps the default 88 % limit"

        with httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {nurse}"}) as as_nurse:
            acked = as_nurse.post(f"/api/alerts/{alert['id']}/ack")
        assert acked.status_code == 200 and acked.json()["acknowledged_by"] == "nurse-ann"

        def adopted_by_the_worker() -> bool:
            # the worker's own later transitions of the alert carry the acknowledgement it adopted
            with Store(settings.database_url) as store:
                items, _ = store.feed_since(None, bed_id="bed-01", limit=5000)
            return any(
                i["kind"] == "alert"
                and i["data"]["id"] == alert["id"]
                and i["data"]["transition"] == "updated"
                and i["data"]["state"] == "acknowledged"
                for i in items
            )

        wait_until(adopted_by_the_worker, 90, "the worker to adopt the acknowledgement", stack)
        assert api.get(f"/api/alerts/{alert['id']}").json()["state"] in ("acknowledged", "resolved")

        def calibrated() -> dict | None:
            return api.get(f"/api/rules/{rule['id']}").json()["calibration"]

        wait_until(lambda: calibrated() is not None, 60, "the worker to calibrate the watch rule", stack)
        assert calibrated()["method"] == "bank-f1" and calibrated()["concepts"]["stages"] == ["W"]
        wait_until(
            lambda: any(
                a["type"] == f"watch:{rule['id']}" for a in api.get("/api/alerts", params={"state": "all"}).json()
            ),
            90,
            "an advisory from the 'wake' watch rule (the simulated nights start awake)",
            stack,
        )
        advisory = next(
            a for a in api.get("/api/alerts", params={"state": "all"}).json() if a["type"] == f"watch:{rule['id']}"
        )
        assert advisory["priority"] == "advisory" and advisory["evidence"]["values"]["text"] == "wake"
        ward = {tile["bed_id"]: tile for tile in api.get("/api/ward").json()}
        assert set(ward) == {"bed-01", "bed-02"} and ward["bed-01"]["active_alerts"] >= 1
        metrics = api.get("/metrics").text
        assert 'sleeplm_alerts_total{priority="medium",transition="raised"}' in metrics
        dead = [line for line in metrics.splitlines() if line.startswith("sleeplm_dead_letters_total")]
        assert all(float(line.split()[-1]) == 0 for line in dead), f"the stack dead-lettered its own records: {dead}"


def _up(api: httpx.Client) -> bool:
    try:
        return api.get("/api/health").status_code == 200
    except httpx.TransportError:
        return False
