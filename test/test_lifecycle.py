"""pose_node's lifecycle over real DDS: transitions requested through the standard lifecycle services."""

from __future__ import annotations

import time

import numpy as np
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.parameter import Parameter
from ros_harness import CPU_NO_MESH, Probe, RosGraph, stamped

from pose_ros.ros.image_conversion import array_to_image
from pose_ros.ros.pose_node import PoseNode


def call(probe: Probe, client, request, timeout: float = 30.0):
    assert client.wait_for_service(timeout_sec=10.0), f"service {client.srv_name} not available"
    future = client.call_async(request)
    deadline = time.monotonic() + timeout
    while not future.done():
        assert time.monotonic() < deadline, f"{client.srv_name} did not answer"
        time.sleep(0.02)
    return future.result()


def test_configure_activate_deactivate_cleanup_over_services(vtest_frames, human_models) -> None:
    with RosGraph() as ros:
        node = ros.add(
            PoseNode(
                context=ros.context,
                parameter_overrides=[*CPU_NO_MESH, Parameter("image_reliability", value="reliable")],
            )
        )  # auto_activate is applied by main(); here the node starts unconfigured
        probe = ros.add(Probe(ros.context))
        get_state = probe.create_client(GetState, "/pose_node/get_state")
        change_state = probe.create_client(ChangeState, "/pose_node/change_state")

        def state() -> int:
            return call(probe, get_state, GetState.Request()).current_state.id

        def transition(transition_id: int) -> bool:
            return call(probe, change_state, ChangeState.Request(transition=Transition(id=transition_id))).success

        assert state() == State.PRIMARY_STATE_UNCONFIGURED
        assert probe.image_pub.get_subscription_count() == 0

        assert transition(Transition.TRANSITION_CONFIGURE)
        assert state() == State.PRIMARY_STATE_INACTIVE
        assert probe.image_pub.get_subscription_count() == 0, "inactive: not subscribed yet"

        assert transition(Transition.TRANSITION_ACTIVATE)
        assert state() == State.PRIMARY_STATE_ACTIVE
        probe.wait_for_subscriber()
        frame = stamped(array_to_image(np.ascontiguousarray(vtest_frames[1][:, :, ::-1]), "bgr8"), sec=70)
        assert len(probe.outputs(probe.send(frame), topics=("people",))["people"].people) >= 4

        assert transition(Transition.TRANSITION_DEACTIVATE)
        assert state() == State.PRIMARY_STATE_INACTIVE
        deadline = time.monotonic() + 5
        while probe.image_pub.get_subscription_count() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert probe.image_pub.get_subscription_count() == 0, "deactivate releases the subscription"

        assert transition(Transition.TRANSITION_CLEANUP)
        assert state() == State.PRIMARY_STATE_UNCONFIGURED
        assert node._pipeline.num_loaded == 0, "cleanup drops the model"


def test_auto_activate_flag_is_read_only(human_models) -> None:
    with RosGraph() as ros:
        node = ros.add(PoseNode(context=ros.context, parameter_overrides=list(CPU_NO_MESH)))
        result = node.set_parameters([Parameter("auto_activate", value=False)])[0]
        assert not result.successful and node.get_parameter("auto_activate").value is True
