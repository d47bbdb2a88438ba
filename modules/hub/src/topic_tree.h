#pragma once
// Subscriptions by topic filter: a trie over topic levels with '+' and '#' nodes, so matching a
// topic costs the depth of the topic, not the number of subscriptions.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace baetyl::hub {

template <class Key>
class TopicTree {
 public:
  // Adds or replaces the subscription of `key` to `filter`; true when it is new.
  bool insert(std::string_view filter, Key key, std::uint8_t qos) {
    Node* node = &root_;
    for_each_level(filter, [&](std::string_view level) {
      auto it = node->children.find(level);
      if (it == node->children.end()) {
        it = node->children.emplace(std::string(level), std::make_unique<Node>()).first;
      }
      node = it->second.get();
    });
    ++version_;
    for (auto& entry : node->subscribers) {
      if (entry.first == key) {
        entry.second = qos;
        return false;
      }
    }
    node->subscribers.emplace_back(key, qos);
    ++size_;
    return true;
  }

  // Removes the subscription of `key` to `filter`; true when there was one.
  bool erase(std::string_view filter, Key key) {
    std::vector<std::pair<Node*, std::string_view>> path;
    Node* node = &root_;
    bool found = true;
    for_each_level(filter, [&](std::string_view level) {
      if (!found) return;
      auto it = node->children.find(level);
      if (it == node->children.end()) {
        found = false;
        return;
      }
      path.emplace_back(node, it->first);
      node = it->second.get();
    });
    if (!found) return false;
    auto& subs = node->subscribers;
    auto it = std::find_if(subs.begin(), subs.end(), [&](const auto& e) { return e.first == key; });
    if (it == subs.end()) return false;
    *it = subs.back();
    subs.pop_back();
    --size_;
    ++version_;
    // Prune nodes left without subscribers or children, deepest first.
    for (auto p = path.rbegin(); p != path.rend(); ++p) {
      auto child = p->first->children.find(p->second);
      if (!child->second->subscribers.empty() || !child->second->children.empty()) break;
      p->first->children.erase(child);
    }
    return true;
  }

  // Calls fn(key, qos) for every subscription whose filter matches the topic name `topic`. A key
  // subscribed through several matching filters is reported once per filter.
  template <class Fn>
  void match(std::string_view topic, Fn&& fn) const {
    const bool dollar = !topic.empty() && topic.front() == '$';
    match_node(root_, topic, 0, dollar, fn);
  }

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Changes with every insert and erase: a match remembered with it holds while it is the same.
  std::uint64_t version() const { return version_; }

 private:
  struct Node {
    std::map<std::string, std::unique_ptr<Node>, std::less<>> children;
    std::vector<std::pair<Key, std::uint8_t>> subscribers;
  };

  template <class Fn>
  static void for_each_level(std::string_view s, Fn&& fn) {
    std::size_t start = 0;
    while (true) {
      std::size_t end = s.find('/', start);
      if (end == std::string_view::npos) {
        fn(s.substr(start));
        return;
      }
      fn(s.substr(start, end - start));
      start = end + 1;
    }
  }

  // `pos` is the start of the next level of `topic`, or npos when every level is consumed.
  template <class Fn>
  static void match_node(const Node& node, std::string_view topic, std::size_t pos, bool dollar,
                         Fn& fn) {
    // [MQTT-4.7.2-1]: wildcards at the first level do not match topics starting with '$'.
    const bool skip_wildcards = dollar && pos == 0;
    if (!skip_wildcards) {
      // '#' matches the parent level and everything below.
      if (auto hash = node.children.find(std::string_view("#")); hash != node.children.end()) {
        for (const auto& [key, qos] : hash->second->subscribers) fn(key, qos);
      }
    }
    if (pos == std::string_view::npos) {
      for (const auto& [key, qos] : node.subscribers) fn(key, qos);
      return;
    }
    std::size_t end = topic.find('/', pos);
    std::string_view level =
        topic.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    std::size_t next = end == std::string_view::npos ? std::string_view::npos : end + 1;
    if (auto it = node.children.find(level); it != node.children.end()) {
      match_node(*it->second, topic, next, dollar, fn);
    }
    if (!skip_wildcards) {
      if (auto plus = node.children.find(std::string_view("+")); plus != node.children.end()) {
        match_node(*plus->second, topic, next, dollar, fn);
      }
    }
  }

  Node root_;
  std::size_t size_ = 0;
  std::uint64_t version_ = 0;
};

}  // namespace baetyl::hub
