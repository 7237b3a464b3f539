import CastleCore
