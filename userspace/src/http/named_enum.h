// One X-macro list -> an enum, its names, its count and to_string(), so that the reasons a
// codec refuses input are declared once and stay in step with their counter labels. The
// http codecs' error lists use it (http/capsule.h, http/connect_ip.h, http/masque_template.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string_view>

#define RAMJET_NAMED_ENUM_VALUE(e, name) e,
#define RAMJET_NAMED_ENUM_NAME(e, name) name,

// Declares `enum class Type : std::uint8_t`, kTypeNames[], kTypeCount and to_string(Type)
// from LIST, an X-macro of X(enumerator, "name"): the name is the counter label and the log
// word.
#define RAMJET_DECLARE_NAMED_ENUM(Type, LIST)                                          \
  enum class Type : std::uint8_t { LIST(RAMJET_NAMED_ENUM_VALUE) };                    \
  inline constexpr std::string_view k##Type##Names[] = {LIST(RAMJET_NAMED_ENUM_NAME)}; \
  inline constexpr std::size_t k##Type##Count = std::size(k##Type##Names);             \
  constexpr std::string_view to_string(Type e) {                                       \
    return k##Type##Names[static_cast<std::size_t>(e)];                                \
  }
