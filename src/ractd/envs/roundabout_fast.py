"""Faster drop-ins for the two slow parts of highway-env's roundabout, with results identical to the stock code.

* `IndexedRoadNetwork.get_closest_lane_index`: the stock query runs every lane's `distance_with_heading` in
  Python, for every vehicle at every simulation frame. Here one vectorized pass over all straight, sine and
  circular lanes gives each lane's distance to within rounding; only the lanes within `CANDIDATE_TOLERANCE`
  of the smallest are then scored with the stock method, and the first lane (in the graph's order) with the
  smallest stock score wins, exactly as the stock argmin picks it.
* `FastKinematicObservation.observe`: the stock observation builds pandas DataFrames from each vehicle's
  `to_dict()` (13 features each, most unused); here the rows are read straight from the vehicles into one
  array and normalized with the same arithmetic.

Both fall back to the stock code for anything they do not cover (other lane classes always go through the
stock score; other features, orders or a missing feature range use the stock observation).
"""

from __future__ import annotations

import numpy as np
from highway_env import utils
from highway_env.envs.common.observation import KinematicObservation
from highway_env.road.lane import AbstractLane, CircularLane, SineLane, StraightLane
from highway_env.road.road import LaneIndex, Road, RoadNetwork

# Each vectorized lane distance is within rounding (~1e-13 m) of the stock value, so any lane whose stock
# distance could be the minimum lies within this margin of the vectorized minimum.
CANDIDATE_TOLERANCE = 1e-6
# A circular lane's longitudinal coordinate jumps where the angle from its start wraps around (opposite the
# lane); a position this close to that seam is scored by the stock code for every lane.
SEAM_MARGIN = 1e-9


def wrap_to_pi(x: np.ndarray) -> np.ndarray:
    """Angle wrapped to [-pi, pi), as highway-env's `utils.wrap_to_pi`."""
    return ((x + np.pi) % (2 * np.pi)) - np.pi


class LaneTable:
    """Every lane of a road network as arrays, for distance_with_heading evaluated on all of them at once."""

    def __init__(self, network: RoadNetwork):
        self.indexes: list[LaneIndex] = []
        self.lanes: list[AbstractLane] = []
        for _from, to_dict in network.graph.items():
            for _to, lanes in to_dict.items():
                for _id, lane in enumerate(lanes):
                    self.indexes.append((_from, _to, _id))
                    self.lanes.append(lane)
        kinds = [type(lane) for lane in self.lanes]
        straight_ids = [i for i, k in enumerate(kinds) if k in (StraightLane, SineLane)]
        circular_ids = [i for i, k in enumerate(kinds) if k is CircularLane]
        # Lanes of any other class are always scored by their own stock method.
        self.other = [i for i, k in enumerate(kinds) if k not in (StraightLane, SineLane, CircularLane)]
        # Column j of the vectorized distances is lane column_lane[j]: straight and sine lanes, then circular.
        self.column_lane = np.array(straight_ids + circular_ids, dtype=np.int64)
        straight = [self.lanes[i] for i in straight_ids]
        self.s_start = np.array([lane.start for lane in straight], dtype=np.float64).reshape(-1, 2)
        self.s_dir = np.array([lane.direction for lane in straight], dtype=np.float64).reshape(-1, 2)
        self.s_lat = np.array([lane.direction_lateral for lane in straight], dtype=np.float64).reshape(-1, 2)
        self.s_heading = np.array([lane.heading for lane in straight], dtype=np.float64)
        # A straight lane is a sine lane of zero amplitude.
        self.s_amp = np.array([getattr(lane, "amplitude", 0.0) for lane in straight], dtype=np.float64)
        self.s_puls = np.array([getattr(lane, "pulsation", 0.0) for lane in straight], dtype=np.float64)
        self.s_phase = np.array([getattr(lane, "phase", 0.0) for lane in straight], dtype=np.float64)
        circular = [self.lanes[i] for i in circular_ids]
        self.c_center = np.array([lane.center for lane in circular], dtype=np.float64).reshape(-1, 2)
        self.c_radius = np.array([lane.radius for lane in circular], dtype=np.float64)
        self.c_start = np.array([lane.start_phase for lane in circular], dtype=np.float64)
        self.c_direction = np.array([lane.direction for lane in circular], dtype=np.float64)
        self.length = np.array([float(self.lanes[i].length) for i in self.column_lane], dtype=np.float64)

    def approximate_distances(self, positions: np.ndarray, headings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distances (V, columns) of V poses to the straight, sine and circular lanes, each within rounding of the
        stock `distance_with_heading`, and (V,) whether the pose sits on a circular lane's seam, where rounding
        is not enough."""
        px, py = positions[:, 0:1], positions[:, 1:2]
        # Straight and sine lanes: coordinate along the chord, lateral offset from the sinusoid.
        dx, dy = px - self.s_start[:, 0], py - self.s_start[:, 1]
        s_straight = dx * self.s_dir[:, 0] + dy * self.s_dir[:, 1]
        wave = self.s_puls * s_straight + self.s_phase
        r_straight = dx * self.s_lat[:, 0] + dy * self.s_lat[:, 1] - self.s_amp * np.sin(wave)
        h_straight = self.s_heading + np.arctan(self.s_amp * self.s_puls * np.cos(wave))
        # Circular lanes: arc length from the start phase, lateral offset from the radius.
        dx, dy = px - self.c_center[:, 0], py - self.c_center[:, 1]
        turned = wrap_to_pi(np.arctan2(dy, dx) - self.c_start)
        s_circular = self.c_direction * turned * self.c_radius
        r_circular = self.c_direction * (self.c_radius - np.hypot(dx, dy))
        h_circular = self.c_direction * s_circular / self.c_radius + self.c_start + np.pi / 2 * self.c_direction
        s = np.concatenate([s_straight, s_circular], axis=1)
        r = np.concatenate([r_straight, r_circular], axis=1)
        angle = headings[:, None] - np.concatenate([h_straight, h_circular], axis=1)
        # AbstractLane.distance_with_heading: |lateral| + distance beyond either end + |heading error|.
        distances = np.abs(r) + np.maximum(s - self.length, 0.0) + np.maximum(-s, 0.0) + np.abs(wrap_to_pi(angle))
        on_seam = np.any(np.pi - np.abs(turned) < SEAM_MARGIN, axis=1)
        return distances, on_seam


class IndexedRoadNetwork(RoadNetwork):
    """A RoadNetwork whose closest-lane query returns the stock answer in a fraction of the time, for one pose
    or for many at once (`closest_lane_indexes`)."""

    def __init__(self) -> None:
        super().__init__()
        self._table: LaneTable | None = None

    @classmethod
    def from_network(cls, network: RoadNetwork) -> IndexedRoadNetwork:
        """The same graph (shared, not copied) behind the faster query."""
        indexed = cls()
        indexed.graph = network.graph
        return indexed

    def add_lane(self, _from: str, _to: str, lane: AbstractLane) -> None:
        self._table = None
        super().add_lane(_from, _to, lane)

    def get_closest_lane_index(self, position: np.ndarray, heading: float | None = None) -> LaneIndex:
        if heading is None:
            return super().get_closest_lane_index(position, heading)
        return self.closest_lane_indexes(np.asarray(position, dtype=np.float64)[None], np.array([heading]))[0]

    def closest_lane_indexes(self, positions: np.ndarray, headings: np.ndarray) -> list[LaneIndex]:
        """`get_closest_lane_index(positions[i], headings[i])` for every i, with one vectorized pass."""
        if self._table is None:
            self._table = LaneTable(self)
        table = self._table
        positions, headings = np.asarray(positions, dtype=np.float64), np.asarray(headings, dtype=np.float64)
        distances, on_seam = table.approximate_distances(positions, headings)
        nearest = distances.min(axis=1, initial=np.inf)
        close = distances <= nearest[:, None] + CANDIDATE_TOLERANCE
        single = (close.sum(axis=1) == 1) & ~on_seam & (not table.other)
        first = close.argmax(axis=1)
        out = []
        for i in range(len(positions)):
            if single[i]:  # the only lane that can be nearest: the stock argmin is this lane
                out.append(table.indexes[table.column_lane[first[i]]])
            elif on_seam[i] or not close[i].any():
                out.append(super().get_closest_lane_index(positions[i], float(headings[i])))
            else:
                candidates = sorted([*table.column_lane[close[i]].tolist(), *table.other])
                out.append(self._stock_argmin(table, candidates, positions[i], float(headings[i])))
        return out

    def _stock_argmin(self, table: LaneTable, candidates: list[int], position: np.ndarray, heading: float):
        """The first candidate (in graph order, as the stock argmin) with the smallest stock distance."""
        scores = [table.lanes[i].distance_with_heading(position, heading) for i in candidates]
        return table.indexes[candidates[int(np.argmin(scores))]]


class DeferredLaneUpdate:
    """Vehicle mixin: on a `BatchedLaneRoad` mid-step, leave the lane update to the road (one batched query for
    all vehicles); anywhere else, update at once as the stock vehicle does."""

    def on_state_update(self) -> None:
        pending = getattr(self.road, "pending_lane_updates", None)
        if pending is None:
            super().on_state_update()
        else:
            pending.append(self)


class BatchedLaneRoad(Road):
    """A Road whose simulation step finds the lanes of all moved vehicles with one query to the network.

    A vehicle's lane depends only on its own pose after its own move, and nothing in a vehicle's step reads
    another vehicle's lane, so updating them together after all moves equals the stock per-vehicle order.
    """

    pending_lane_updates: list | None = None

    @classmethod
    def from_road(cls, road: Road, network: RoadNetwork) -> BatchedLaneRoad:
        """A copy of `road` (same vehicles, objects, random generator and options) on `network`."""
        batched = cls.__new__(cls)
        batched.__dict__.update(road.__dict__)
        batched.network = network
        return batched

    def step(self, dt: float) -> None:
        self.pending_lane_updates = []
        try:
            for vehicle in self.vehicles:
                vehicle.step(dt)
        finally:
            pending, self.pending_lane_updates = self.pending_lane_updates, None
        if pending:
            if isinstance(self.network, IndexedRoadNetwork):
                indexes = self.network.closest_lane_indexes(
                    np.array([v.position for v in pending]), np.array([v.heading for v in pending])
                )
            else:
                indexes = [self.network.get_closest_lane_index(v.position, v.heading) for v in pending]
            for vehicle, lane_index in zip(pending, indexes, strict=True):
                vehicle.lane_index = lane_index
                vehicle.lane = self.network.get_lane(lane_index)
                if self.record_history:
                    vehicle.history.appendleft(vehicle.create_from(vehicle))
        # Collisions, as Road.step.
        for i, vehicle in enumerate(self.vehicles):
            for other in self.vehicles[i + 1 :]:
                vehicle.handle_collisions(other, dt)
            for other in self.objects:
                vehicle.handle_collisions(other, dt)


class FastKinematicObservation(KinematicObservation):
    """KinematicObservation without pandas, for the features presence, x, y, vx, vy and type."""

    SUPPORTED = frozenset({"presence", "x", "y", "vx", "vy", "type"})

    def observe(self) -> np.ndarray:
        if (
            not self.env.road
            or self.order != "sorted"
            or not self.features_range
            or not set(self.features) <= self.SUPPORTED
        ):
            return super().observe()
        ego = self.observer_vehicle
        close = self.env.road.close_objects_to(
            ego,
            self.env.PERCEPTION_DISTANCE,
            count=self.vehicles_count - 1,
            see_behind=self.see_behind,
            sort=True,
            vehicles_only=not self.include_obstacles,
        )
        others = close[-self.vehicles_count + 1 :] if close else []
        if "type" in self.features and not all(hasattr(v, "VEHICLE_TYPE") for v in [ego, *others]):
            return super().observe()  # the stock path decides what an untyped row holds
        origin = None if self.absolute else ego
        rows = np.array([self._row(ego, None), *(self._row(v, origin) for v in others)], dtype=np.float64)
        columns = {name: rows[:, j] for j, name in enumerate(("presence", "x", "y", "vx", "vy", "type"))}
        for feature, f_range in self.features_range.items():
            if feature in columns and feature in self.features:
                columns[feature] = utils.lmap(columns[feature], [f_range[0], f_range[1]], [-1, 1])
                if self.clip:
                    columns[feature] = np.clip(columns[feature], -1, 1)
        obs = np.zeros((self.vehicles_count, len(self.features)))
        for j, feature in enumerate(self.features):
            obs[: len(rows), j] = columns[feature]
        return obs.astype(self.space().dtype)

    @staticmethod
    def _row(vehicle, origin) -> tuple[float, ...]:
        """(presence, x, y, vx, vy, type) as `to_dict` writes them; x..vy relative to `origin` when given."""
        x, y = vehicle.position[0], vehicle.position[1]
        velocity = vehicle.velocity
        vx, vy = velocity[0], velocity[1]
        if origin is not None:
            origin_velocity = origin.velocity
            x, y = x - origin.position[0], y - origin.position[1]
            vx, vy = vx - origin_velocity[0], vy - origin_velocity[1]
        return 1.0, x, y, vx, vy, float(getattr(vehicle, "VEHICLE_TYPE", 0))
