"""RoundaboutOOCEnv: highway-env's roundabout-v0 with car, bicycle or mixed traffic and a vehicle-type feature.

Imports highway-env at module load; reach it through `ractd.envs.roundabout.make_roundabout_env` (or
`gymnasium.make(ENV_ID)`), which names the extra to install when it is missing. See docs/roundabout.md.
"""

from __future__ import annotations

from highway_env.envs.common.action import DiscreteMetaAction
from highway_env.envs.common.observation import KinematicObservation
from highway_env.envs.roundabout_env import RoundaboutEnv
from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.controller import MDPVehicle

from ractd.envs.roundabout_fast import (
    BatchedLaneRoad,
    DeferredLaneUpdate,
    FastKinematicObservation,
    IndexedRoadNetwork,
)
from ractd.envs.roundabout_traffic import OBS_FEATURES, OBS_ROWS, TRAFFIC_OPTIONS, VEHICLE_TYPES, check_traffic


class TypedVehicle:
    """Mixin: a vehicle whose `to_dict` row carries its kind as the feature `type` (VEHICLE_TYPES)."""

    VEHICLE_TYPE: int = VEHICLE_TYPES["car"]

    def to_dict(self, origin_vehicle=None, observe_intentions: bool = True) -> dict:
        return {**super().to_dict(origin_vehicle, observe_intentions), "type": float(self.VEHICLE_TYPE)}


class Car(TypedVehicle, DeferredLaneUpdate, IDMVehicle):
    """An environment car: highway-env's IDM/MOBIL vehicle unchanged (length 5 m, width 2 m, acceleration 6 / 3)."""

    VEHICLE_TYPE = VEHICLE_TYPES["car"]


class Bicycle(TypedVehicle, DeferredLaneUpdate, IDMVehicle):
    """An environment bicycle: IDM/MOBIL driving with a bicycle's size, acceleration and top speed."""

    VEHICLE_TYPE = VEHICLE_TYPES["bicycle"]
    LENGTH = 2.0  # [m]
    WIDTH = 1.0  # [m]
    ACC_MAX = 2.0  # [m/s²] maximum acceleration
    COMFORT_ACC_MAX = 1.0  # [m/s²] desired maximum acceleration
    MAX_SPEED = 6.0  # [m/s]


class EgoCar(TypedVehicle, DeferredLaneUpdate, MDPVehicle):
    """The controlled car (DiscreteMetaAction's MDPVehicle), typed as a car."""

    VEHICLE_TYPE = VEHICLE_TYPES["car"]


VEHICLE_CLASSES: dict[str, type[IDMVehicle]] = {"car": Car, "bicycle": Bicycle}
# The four environment vehicles of roundabout-v0, in its spawn order: (lane, mean longitudinal position [m]).
SLOTS: tuple[tuple[tuple[str, str, int], float], ...] = (
    (("we", "sx", 1), 5.0),  # incoming, inner ring lane
    (("we", "sx", 0), 20.0),  # outer ring lane, ahead
    (("we", "sx", 0), -20.0),  # outer ring lane, behind
    (("eer", "ees", 0), 50.0),  # entering from the east
)
DESTINATIONS = ["exr", "sxr", "nxr"]
POSITION_DEVIATION = 2.0  # [m], roundabout-v0's spawn position noise
CAR_SPEEDS = {"env": "16 + N(0, 2²) m/s (roundabout-v0)", "table": "U[23, 25] m/s (Vehicle.DEFAULT_INITIAL_SPEEDS)"}


class RoundaboutOOCEnv(RoundaboutEnv):
    """roundabout-v0 whose four environment vehicles are cars or bicycles, per the `traffic` config key.

    Config keys added to roundabout-v0's: `traffic` (TRAFFIC_OPTIONS), `car_speed` ("env" or "table"),
    `bicycle_speed` ([low, high] m/s: initial and target speed), `bicycle_advance_m` (bicycles start this far
    further along their route, so the slow vehicles still meet the ego), `fast` (the vectorized lane lookup
    and pandas-free observation; same trajectories as the stock code). The observation adds the vehicle-type
    column: 5 rows x (presence, x, y, vx, vy, type). roundabout-v0's `other_vehicles_type` is not used.
    """

    @classmethod
    def default_config(cls) -> dict:
        config = super().default_config()
        config["observation"] = {
            **config["observation"],
            "features": list(OBS_FEATURES),
            "vehicles_count": OBS_ROWS,
            "see_behind": False,
        }
        config.update(
            {
                "traffic": "mixed",
                "car_speed": "env",
                "bicycle_speed": [4.0, 6.0],
                "bicycle_advance_m": 10.0,
                "fast": True,
            }
        )
        return config

    def define_spaces(self) -> None:
        super().define_spaces()
        if self.config["fast"] and type(self.observation_type) is KinematicObservation:
            self.observation_type = FastKinematicObservation(self, **self.config["observation"])
            self.observation_space = self.observation_type.space()

    def _make_road(self) -> None:
        super()._make_road()
        if self.config["fast"]:
            self.road = BatchedLaneRoad.from_road(self.road, IndexedRoadNetwork.from_network(self.road.network))

    def vehicle_kinds(self) -> list[str]:
        """The kinds ("car" / "bicycle") of the four environment vehicles of the current episode."""
        kind_of = {code: kind for kind, code in VEHICLE_TYPES.items()}
        return [kind_of[v.VEHICLE_TYPE] for v in self.road.vehicles if v is not self.vehicle]

    def _draw_kinds(self) -> list[str]:
        """The kind of each of the four slots under the configured traffic (draws only where it is random)."""
        traffic, rng = check_traffic(self.config["traffic"]), self.np_random
        if traffic in VEHICLE_CLASSES:
            return [traffic] * len(SLOTS)
        if traffic == "train":
            return [("car" if rng.random() < 0.5 else "bicycle")] * len(SLOTS)
        if traffic == "mixed":
            while True:
                kinds = ["bicycle" if b else "car" for b in rng.random(len(SLOTS)) < 0.5]
                if len(set(kinds)) == 2:
                    return kinds
        if traffic == "test-1":
            return ["bicycle", "car", "car", "car"]
        if traffic == "test-2":
            return ["car", "bicycle", "bicycle", "bicycle"]
        k = int(traffic.rpartition("-")[2])  # bicycles-k
        chosen = set(rng.choice(len(SLOTS), size=k, replace=False).tolist())
        return ["bicycle" if i in chosen else "car" for i in range(len(SLOTS))]

    def _initial_speed(self, kind: str) -> float:
        rng = self.np_random
        if kind == "bicycle":
            low, high = self.config["bicycle_speed"]
            return float(rng.uniform(low, high))
        if self.config["car_speed"] == "env":
            return 16.0 + rng.normal() * 2.0
        if self.config["car_speed"] == "table":
            return float(rng.uniform(23.0, 25.0))
        raise ValueError(f"unknown car_speed {self.config['car_speed']!r}; choose one of: {', '.join(CAR_SPEEDS)}")

    def _make_vehicles(self) -> None:
        """The ego on the south approach, routed to the north exit; four cars/bicycles as roundabout-v0 places
        them (same random draws in the same order for cars, so `traffic=car` is roundabout-v0's traffic)."""
        if not isinstance(self.action_type, DiscreteMetaAction):
            raise ValueError(f"the roundabout expects the DiscreteMetaAction action type, got {self.config['action']}")
        ego_lane = self.road.network.get_lane(("ser", "ses", 0))
        ego = EgoCar(
            self.road,
            ego_lane.position(125.0, 0.0),
            speed=8.0,
            heading=ego_lane.heading_at(140.0),
            target_speeds=self.action_type.target_speeds,
        )
        ego.plan_route_to("nxs")
        self.road.vehicles.append(ego)
        self.vehicle = ego

        for slot, kind in enumerate(self._draw_kinds()):
            lane_index, mean_position = SLOTS[slot]
            longitudinal = mean_position + self.np_random.normal() * POSITION_DEVIATION
            if kind == "bicycle":
                longitudinal += float(self.config["bicycle_advance_m"])
            vehicle = VEHICLE_CLASSES[kind].make_on_lane(
                self.road, lane_index, longitudinal=longitudinal, speed=self._initial_speed(kind)
            )
            if slot == 0 and self.config["incoming_vehicle_destination"] is not None:
                destination = DESTINATIONS[self.config["incoming_vehicle_destination"]]
            else:
                destination = self.np_random.choice(DESTINATIONS)
            vehicle.plan_route_to(destination)
            vehicle.randomize_behavior()
            self.road.vehicles.append(vehicle)


__all__ = ["Bicycle", "Car", "EgoCar", "RoundaboutOOCEnv", "TRAFFIC_OPTIONS"]
